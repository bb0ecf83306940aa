"""uvicorn's HTTP/1.1 protocols with limits on a request's line and headers, which uvicorn does
not bound itself (httptools buffers them without limit; h11 only while they are incomplete).

`limited_protocol(...)` is the httptools protocol where httptools is importable (it is the
faster parser by far), uvicorn's h11 protocol otherwise, each with:
- a cap on the request line plus headers, in bytes, answered 400 and closed: counted from the
  bytes that arrive while they are incomplete (so a client that sends an endless header is cut
  off once it has sent the cap and one read more, whatever the read sizes), and measured on the
  parsed line and headers once they are whole (so an oversized request that arrives in one read
  is refused too);
- a deadline for a request's line and headers, counted from the connection's start (and from
  the first byte of the next request on a kept-alive connection): a client that has not sent them
  whole by then is disconnected, however slowly it trickles bytes (uvicorn's keep-alive timer
  is cancelled by any byte, and does not run before the first request).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

TOO_LONG = "Request line and headers too long."


def limited_protocol(max_header_bytes: int, header_timeout: float) -> type[asyncio.Protocol]:
    """The fastest parser installed, with the limits."""
    try:
        return httptools_protocol(max_header_bytes, header_timeout)
    except ImportError:
        return h11_protocol(max_header_bytes, header_timeout)


def head_size(target: bytes, headers: Iterable[tuple[bytes, bytes]]) -> int:
    """The size of a parsed request line and headers, as both protocols count it."""
    return len(target) + sum(len(name) + len(value) + 4 for name, value in headers)


class HeaderDeadline:
    """The header deadline, mixed into a uvicorn protocol (it has `loop` and `transport`)."""

    header_timeout: float
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    _header_deadline: asyncio.TimerHandle | None = None

    def _reading_head(self) -> bool:
        """Whether the client owes the line and headers of a request (or is between two)."""
        raise NotImplementedError

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _arm_on_next_request(self) -> None:
        # The next request on a kept-alive connection: its first byte starts the deadline
        # (until then the keep-alive timeout governs the idle connection).
        if self._header_deadline is None and self._reading_head():
            self._arm_header_deadline()

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self._reading_head() and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)  # type: ignore[misc]


def h11_protocol(max_header_bytes: int, header_timeout: float) -> type[H11Protocol]:
    class LimitedH11Protocol(HeaderDeadline, H11Protocol):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            next_event = self.conn.next_event

            # h11 caps the bytes of incomplete headers (h11_max_incomplete_event_size); a whole
            # oversized request that arrives in one read is refused here.
            def checked_next_event() -> Any:
                event = next_event()
                if (
                    isinstance(event, h11.Request)
                    and head_size(event.target, event.headers) > max_header_bytes
                ):
                    raise h11.RemoteProtocolError(TOO_LONG)
                return event

            self.conn.next_event = checked_next_event  # type: ignore[method-assign]

        def _reading_head(self) -> bool:
            return self.conn.their_state is h11.IDLE

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:
                self._disarm_header_deadline()  # this request's headers are in

        def data_received(self, data: bytes) -> None:
            self._arm_on_next_request()
            super().data_received(data)

    LimitedH11Protocol.header_timeout = header_timeout
    return LimitedH11Protocol


def httptools_protocol(max_header_bytes: int, header_timeout: float) -> type[asyncio.Protocol]:
    """Raises ImportError where httptools is not installed."""
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class LimitedHttpToolsProtocol(HeaderDeadline, HttpToolsProtocol):  # type: ignore[misc]
        # httptools keeps a header's name and value to itself until the header ends, so what it
        # holds of an unfinished head is counted here in whole reads: those that arrived while
        # the head was unfinished and held nothing else. A read that also ends an earlier
        # request is left out of the count (at most one read more is held); the parsed line
        # and headers are measured exactly once they are whole.
        _in_head = True  # from a request's end (or the connection's start) to its next headers
        _head_received = 0  # bytes of the unfinished head, in whole reads
        _head_ended = False  # whether the read being parsed ended a head

        def _reading_head(self) -> bool:
            return self._in_head

        def data_received(self, data: bytes) -> None:
            self._arm_on_next_request()
            whole_read_in_head = self._in_head
            self._head_ended = False
            super().data_received(data)
            if whole_read_in_head and not self._head_ended:
                self._head_received += len(data)
                if self._head_received > max_header_bytes and not self.transport.is_closing():
                    self.logger.warning(TOO_LONG)
                    self.send_400_response(TOO_LONG)

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._head_ended = True
            self._disarm_header_deadline()
            if head_size(self.url, self.headers) > max_header_bytes:
                # Raised through the parser, it is answered 400 and the connection closed.
                raise httptools.HttpParserError(TOO_LONG)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_head = True
            self._head_received = 0
            super().on_message_complete()

    LimitedHttpToolsProtocol.header_timeout = header_timeout
    return LimitedHttpToolsProtocol
