"""What one client can hold of a running `darkroom serve`: the size of a request's line and
headers."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.support.servers import Darkroom, running

BIG = 100_000


@pytest.fixture
def server(tmp_path) -> Iterator[Darkroom]:
    with running(
        tmp_path,
        None,
        "--workers",
        "0",
    ) as darkroom:
        yield darkroom


def connect(darkroom: Darkroom) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", darkroom.port), timeout=10)
    return sock


def send_all_or_reset(sock: socket.socket, data: bytes) -> None:
    # The server may hang up before it has read it all: that is an answer too.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def answer(sock: socket.socket) -> bytes:
    """What the server sends until it closes (b"" for a plain close or reset)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def healthy(darkroom: Darkroom) -> bool:
    return httpx.get(f"{darkroom.base_url}/healthz", timeout=5).status_code == 200


def assert_refused(reply: bytes) -> None:
    assert reply == b"" or reply.startswith(b"HTTP/1.1 400"), reply[:200]


def test_a_huge_header_is_refused_and_the_server_goes_on(server):
    sock = connect(server)
    send_all_or_reset(
        sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * BIG + b"\r\n\r\n"
    )
    assert_refused(answer(sock))
    assert healthy(server)


def test_a_huge_url_is_refused_and_the_server_goes_on(server):
    sock = connect(server)
    send_all_or_reset(sock, b"GET /healthz?q=" + b"a" * BIG + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_refused(answer(sock))
    assert healthy(server)


def test_many_endless_headers_at_once_are_each_cut_off(server):
    socks = [connect(server) for _ in range(8)]
    for sock in socks:
        send_all_or_reset(sock, b"GET / HTTP/1.1\r\nHost: x\r\nX-Endless: ")
    for _ in range(10):  # 10 x 16 KB each, well past the limit: the server stops reading them
        for sock in socks:
            send_all_or_reset(sock, b"a" * 16_384)
    for sock in socks:
        assert_refused(answer(sock))
    assert healthy(server)
