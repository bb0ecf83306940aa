"""Limits on what one client can hold of the server, where uvicorn does not bound it itself.

`h11_protocol(...)` is uvicorn's h11 protocol (whatever other parser is installed; httptools
buffers a request line and headers without limit) with:
- a cap on the request line plus headers, in bytes: h11's own cap applies only while they are
  incomplete, so a whole oversized request that arrives in one read is refused here; both are
  answered 400 and closed;
- a deadline for a request's line and headers, counted from the connection's start (and from
  the first byte of the next request on a kept-alive connection): a client that has not sent them
  whole by then is disconnected, however slowly it trickles bytes (uvicorn's keep-alive timer
  is cancelled by any byte, and does not run before the first request).

`BodyTimeout`, wrapped around the app by `darkroom serve`, is an ASGI guard that bounds the
time from a request's headers to the last byte of its body; past it the request is answered
with code 3 and the connection is closed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import h11
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from darkroom.errors import InvalidRequest


def h11_protocol(max_header_bytes: int, header_timeout: float) -> type[H11Protocol]:
    class LimitedH11Protocol(H11Protocol):
        _header_deadline: asyncio.TimerHandle | None = None

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            next_event = self.conn.next_event

            def checked_next_event() -> Any:
                event = next_event()
                if isinstance(event, h11.Request):
                    size = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
                    if size > max_header_bytes:
                        raise h11.RemoteProtocolError("request line and headers too long")
                return event

            self.conn.next_event = checked_next_event  # type: ignore[method-assign]

        def _arm_header_deadline(self) -> None:
            self._disarm_header_deadline()
            self._header_deadline = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _disarm_header_deadline(self) -> None:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None

        def _headers_too_slow(self) -> None:
            self._header_deadline = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_deadline()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:
                self._disarm_header_deadline()  # this request's headers are in

        def data_received(self, data: bytes) -> None:
            # The next request on a kept-alive connection: its first byte starts the deadline
            # (until then the keep-alive timeout governs the idle connection).
            if self._header_deadline is None and self.conn.their_state is h11.IDLE:
                self._arm_header_deadline()
            super().data_received(data)

    return LimitedH11Protocol


class BodyTimeout:
    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = time.monotonic() + self.seconds
        body_done = False
        timed_out = False

        async def timed_receive() -> Message:
            nonlocal body_done, timed_out
            if body_done:
                return await receive()  # after the body: waiting for a disconnect is fine
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0))
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
