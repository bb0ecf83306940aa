"""What `darkroom serve` hands to uvicorn: the app and the HTTP protocol, named by import strings
so that the same names serve one process and `--processes N` alike.

uvicorn starts each of N processes afresh (multiprocessing's spawn), so nothing built in the
parent reaches them: `app_from_env` rebuilds the settings in each process from the environment
(which `serve` fills with its command-line options first), and `HttpProtocol` is the limited
protocol (httptools where installed, h11 otherwise: api/protocols.py) built from those same
settings when uvicorn imports it. With one process the same path runs in the one process.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp

from darkroom import logs
from darkroom.api.app import create_app
from darkroom.api.hot import HotRoutes
from darkroom.api.limits import BodyTimeout
from darkroom.api.media import HOT_ROUTES
from darkroom.api.protocols import limited_protocol
from darkroom.config import Settings

APP_FACTORY = "darkroom.api.serving:app_from_env"
HTTP_PROTOCOL = "darkroom.api.serving:HttpProtocol"


def app_from_env() -> ASGIApp:
    """The served app of this process's settings (DARKROOM_* variables)."""
    settings = Settings()
    logs.configure(settings.log_level)
    return served_app(settings)


def served_app(settings: Settings) -> ASGIApp:
    app = create_app(settings)
    _freeze_heap_after_startup(app)
    return BodyTimeout(HotRoutes(app, HOT_ROUTES), seconds=settings.body_timeout_seconds)


def http_protocol(settings: Settings) -> type:
    return limited_protocol(settings.max_header_bytes, settings.header_timeout_seconds)


def __getattr__(name: str) -> Any:
    # A module attribute computed on access: uvicorn imports the protocol by name in each
    # process, and its limits come from that process's settings.
    if name == "HttpProtocol":
        return http_protocol(Settings())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _freeze_heap_after_startup(app: FastAPI) -> None:
    """Once the lifespan has started (modules imported, catalog, pools, caches built), the
    objects alive then live as long as the process: `gc.freeze()` moves them out of the
    collector's generations. Without it every full collection walks that whole heap again,
    60-70 ms every ~1.4 s under load on the result path (issue 15 measured +20% req/s and a
    lower p99 with it). Garbage made during start-up is collected first, so none is kept."""
    started = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with started(app) as state:
            gc.collect()
            gc.freeze()
            yield state

    app.router.lifespan_context = lifespan
