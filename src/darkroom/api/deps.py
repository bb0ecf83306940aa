"""What a route depends on, as FastAPI dependencies: the running `App` and the caller's key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from darkroom.app import App


async def current_app(request: Request) -> App:
    # Async on purpose: FastAPI runs a plain function dependency in a worker thread, a hop
    # that cost more than the rest of a result request.
    return current_app_of(request)


def current_app_of(request: Request) -> App:
    """The App, for a route that reads it without the dependency."""
    return request.app.state.darkroom


CurrentApp = Annotated[App, Depends(current_app)]
