"""The application factory. The lifespan opens the parts (database, storage, catalog), runs
the in-process workers and the retention sweeper, and on shutdown lets workers finish."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from darkroom import __version__
from darkroom.api import (
    balance,
    deliveries,
    errors,
    files,
    generate,
    listing,
    media,
    openai,
    ops,
)
from darkroom.app import App
from darkroom.config import Settings
from darkroom.web import install as install_web


def create_app(settings: Settings | None = None, *, workers: int | None = None) -> FastAPI:
    settings = settings or Settings()
    worker_count = settings.workers if workers is None else workers

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with App.from_settings(settings) as darkroom:
            app.state.darkroom = darkroom
            darkroom.start_maintenance()
            darkroom.start_workers(worker_count)
            yield

    app = FastAPI(
        title="Darkroom",
        version=__version__,
        description="Asynchronous image generation: create a task, then fetch its result.",
        lifespan=lifespan,
        **_docs_routes(settings),
    )
    app.include_router(media.router)
    app.include_router(generate.router)
    app.include_router(listing.router)
    app.include_router(balance.router)
    app.include_router(deliveries.router)
    app.include_router(files.router)
    app.include_router(ops.router)
    app.include_router(openai.router)  # its errors in OpenAI's shape: api/openai/errors.py
    install_web(app)  # the pages at / and /console, and /v1/admin/
    errors.install(app)
    return app


def _docs_routes(settings: Settings) -> dict[str, None]:
    """FastAPI's defaults (/docs, /redoc, /openapi.json), or none of them with
    DARKROOM_PUBLIC_DOCS=0: they hold no secrets, but some operators hide the surface."""
    if settings.public_docs:
        return {}
    return {"docs_url": None, "redoc_url": None, "openapi_url": None}
