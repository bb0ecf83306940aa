"""What a route depends on, as FastAPI dependencies: the running `App` and the caller's key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from darkroom.app import App


def current_app(request: Request) -> App:
    return request.app.state.darkroom


CurrentApp = Annotated[App, Depends(current_app)]
