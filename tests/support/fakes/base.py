"""A real HTTP server on a free local port, run in a thread, for providers that cannot be
reached from here. Subclasses answer requests as the provider documents; tests script faults
ahead (`fail_next`, `stall_next`) and read back what was asked (`requests`)."""

from __future__ import annotations

import io
import json
import struct
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any) -> Answer:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})


class FakeServer:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._faults: deque[Answer | float] = deque()
        self._lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0  # the most requests it was answering at once
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, status: int, times: int = 1, payload: Any = None) -> None:
        """The next `times` requests are answered `status` with `payload` (the provider's
        error body by default)."""
        answer = Answer.json(status, payload if payload is not None else self.error(status))
        with self._lock:
            self._faults.extend([answer] * times)

    def stall_next(self, seconds: float, times: int = 1) -> None:
        """The next `times` requests are answered only after `seconds`."""
        with self._lock:
            self._faults.extend([seconds] * times)

    def error(self, status: int) -> Any:
        """The provider's error body for `status`."""
        return {"error": {"code": status, "message": f"fake error {status}"}}

    def answer(self, request: Request) -> Answer:
        raise NotImplementedError

    def takes_faults(self, request: Request) -> bool:
        """Whether scripted faults apply to `request` (a sign-in may be spared)."""
        return True

    def _dispatch(self, request: Request) -> Answer:
        with self._lock:
            self.requests.append(request)
            scripted = self._faults and self.takes_faults(request)
            fault = self._faults.popleft() if scripted else None
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if isinstance(fault, Answer):
                return fault
            if isinstance(fault, float | int):
                time.sleep(fault)
            return self.answer(request)
        finally:
            with self._lock:
                self.in_flight -= 1


def _handler_for(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
            )
            answer = fake._dispatch(request)
            try:
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def png(width: int, height: int, color: tuple[int, int, int] = (40, 90, 160)) -> bytes:
    """A picture of the given size, with a white band in the middle third of its height, so a
    test can tell a center crop from a stretch."""
    image = Image.new("RGB", (width, height), color)
    band = Image.new("RGB", (width, height // 3), (255, 255, 255))
    image.paste(band, (0, height // 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A small PNG whose header claims a huge canvas (a decompression bomb): nothing may
    decode it. The header's checksum is right, so only a pixel count tells it apart."""
    data = bytearray(png(8, 8))
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)
