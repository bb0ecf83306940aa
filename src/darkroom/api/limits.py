"""Limits on what one client can hold of the server, where uvicorn does not bound it itself.

`h11_protocol(...)` is uvicorn's h11 protocol (whatever other parser is installed; httptools
buffers a request line and headers without limit) with:
- a cap on the request line plus headers, in bytes: h11's own cap applies only while they are
  incomplete, so a whole oversized request that arrives in one read is refused here; both are
  answered 400 and closed.
"""

from __future__ import annotations

from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def h11_protocol(max_header_bytes: int) -> type[H11Protocol]:
    class LimitedH11Protocol(H11Protocol):
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

    return LimitedH11Protocol
