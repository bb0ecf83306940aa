"""The web face of Darkroom: the pages (pages.py, templates/, static/), their security
headers (headers.py), and the operator's endpoints under /v1/admin/ (admin.py)."""

from __future__ import annotations

from fastapi import FastAPI

from darkroom.web import admin, pages


def install(app: FastAPI) -> None:
    """Mounts the pages, their static files and the admin routes on the app."""
    app.include_router(pages.router)
    app.include_router(admin.router)
    app.mount("/static", pages.static_files, name="static")
