"""What one client can hold of a running `darkroom serve`: the size of a request's line and
headers, the time to send them and its body, and the number of connections."""

from __future__ import annotations

import contextlib
import socket
import time
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
        header_timeout_seconds=2,
        body_timeout_seconds=2,
        max_connections=100,
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


def test_headers_sent_too_slowly_are_cut_off(server):
    sock = connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    closed = False
    for _ in range(40):  # a byte every 0.25 s: each one would reset a keep-alive timer
        try:
            sock.sendall(b"X-Slow: 1\r\n")
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        time.sleep(0.25)
    sock.settimeout(5)
    assert closed or answer(sock) == b""
    assert healthy(server)


def one_answer(sock: socket.socket) -> bytes:
    """One answer on a kept-alive connection: its headers and its Content-Length of body."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(
        next(line for line in head.lower().split(b"\r\n") if b"content-length" in line).split(b":")[
            1
        ]
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_an_idle_kept_alive_connection_outlives_the_header_timeout(server):
    sock = connect(server)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    sock.sendall(request)
    assert one_answer(sock).startswith(b"HTTP/1.1 200")
    time.sleep(3)  # past the 2 s header timeout, well inside the keep-alive timeout
    sock.sendall(request)
    assert one_answer(sock).startswith(b"HTTP/1.1 200")


def test_a_half_sent_body_is_answered_and_closed_after_the_body_timeout(server):
    key = server.create_key()
    sock = connect(server)
    sock.sendall(
        b"POST /v1/media/create HTTP/1.1\r\nHost: x\r\nAuthorization: " + key.encode() + b"\r\n"
        b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"model": '
    )
    sock.settimeout(15)  # far past the 2 s body timeout: a pending body would raise here
    reply = answer(sock)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert b'"code":3' in reply.replace(b" ", b"") and b"did not arrive" in reply
    assert healthy(server)


def test_healthz_answers_while_many_idle_sockets_are_open_below_the_cap(server):
    socks = [connect(server) for _ in range(90)]
    try:
        assert healthy(server)
    finally:
        for sock in socks:
            sock.close()


def test_past_the_connection_cap_requests_get_503(server):
    socks = [connect(server) for _ in range(110)]
    try:
        time.sleep(0.5)
        assert httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 503
    finally:
        for sock in socks:
            sock.close()
