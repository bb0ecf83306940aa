"""The pages: the playground and gallery at `/`, the operator's console at `/console`, and
their static files (own script and style, the vendored Alpine.js) under `/static/`.

The templates only lay the pages out; everything they show comes from the JSON API, called
by static/darkroom.js with the key the person pastes (kept in the tab's sessionStorage,
never in a cookie or a URL), so the pages answer the same to everyone and hold no secret.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from darkroom import __version__
from darkroom.web.headers import SecuredStaticFiles, secured

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
static_files = SecuredStaticFiles(directory=HERE / "static")

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def playground(request: Request) -> HTMLResponse:
    return _page(request, "playground.html")


@router.get("/console", response_class=HTMLResponse)
async def console(request: Request) -> HTMLResponse:
    return _page(request, "console.html")


def _page(request: Request, template: str) -> HTMLResponse:
    # The version in static links makes a browser fetch them anew after an upgrade.
    context = {"version": __version__}
    response = templates.TemplateResponse(request, template, context)
    response.headers["cache-control"] = "no-cache"
    return secured(response)
