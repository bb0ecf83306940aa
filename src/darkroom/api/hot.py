"""The hot routes, dispatched before FastAPI's stack: `/v1/media/result`, which polling clients
call every second or so per task, and `/v1/media/create`, which arrives in bursts.

Both are plain `async def route(request) -> Response` functions that call their steps directly
(api/media.py), and they stay registered with FastAPI too, which documents them in OpenAPI and
serves them where this wrapper is not used (an app built by `create_app` alone). `darkroom serve`
wraps the app in `HotRoutes` (api/serving.py): a request whose method and path match one of them
exactly is answered by the function at once, with the app's own exception handlers
(api/errors.py), and every other request goes through FastAPI as before.

Why: FastAPI's layers around a route (telemetry hooks that read the environment each request,
the body-size guard, the exception and exit-stack middlewares, the included routers' matching,
dependency solving) cost about as much CPU as the whole result route's own work, and these two
routes use none of them (issue 15; bench/api.py). An operator who turns on FastAPI's OpenTelemetry
gets no spans for these two routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from fastapi import FastAPI, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from darkroom.api.errors import handled_response

Route = Callable[[Request], Awaitable[Response]]


class HotRoutes:
    def __init__(self, app: FastAPI, routes: Mapping[tuple[str, str], Route]) -> None:
        """`routes`: by (method, path), e.g. ("GET", "/v1/media/result")."""
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get((scope.get("method", ""), scope.get("path", "")))
        if route is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app  # what Starlette sets: routes find the App through it
        request = Request(scope, receive, send)
        try:
            response = await route(request)
        except ClientDisconnect:
            return  # nobody is left to answer
        except Exception as exc:
            response = await handled_response(request, exc)
        await response(scope, receive, send)
