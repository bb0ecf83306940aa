"""Limits on what one client can hold of the server, where uvicorn does not bound it itself.

The request line and headers are bounded, in size and time, by the protocols of
`darkroom.api.protocols`. `BodyTimeout`, wrapped around the app by `darkroom serve`, is an ASGI
guard that bounds the time from a request's headers to the last byte of its body; past it the
request is answered with code 3 and the connection is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from darkroom.errors import InvalidRequest


class BodyTimeout:
    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.seconds
        body_done = False
        timed_out = False

        async def timed_receive() -> Message:
            nonlocal body_done, timed_out
            if body_done:
                return await receive()  # after the body: waiting for a disconnect is fine
            try:
                # timeout_at, not wait_for: wait_for wraps each receive in a task of its own,
                # which cost ~55 us a request, as much as a third of the whole result route.
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                raise InvalidRequest(
                    f"The request body did not arrive within {self.seconds:g} s."
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def closing_send(message: Message) -> None:
            if timed_out and message["type"] == "http.response.start":
                headers: list[Any] = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"
                ]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, timed_receive, closing_send)
