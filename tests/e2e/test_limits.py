"""What one client can hold of a running `darkroom serve`: the size of a request's line and
headers, the time to send them and its body, and the number of connections. Each test runs on
both of the server's HTTP parsers: httptools (the one `darkroom serve` picks where it is
installed, as it is here) and h11 (its fallback, run with httptools hidden from the server)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from darkroom.api.protocols import limited_protocol
from tests.support.servers import Darkroom

BIG = 100_000
CAP = 16_384  # DARKROOM_MAX_HEADER_BYTES of the server under test
PARSERS = ["httptools", "h11"]


def hide_httptools(darkroom: Darkroom, folder: Path) -> None:
    """Runs the server as on an install without httptools: an `httptools` that fails to import
    comes first on its path."""
    stub = folder / "no-httptools" / "httptools"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('raise ImportError("httptools is hidden from this server")')
    path = darkroom.env.get("PYTHONPATH")
    darkroom.env["PYTHONPATH"] = os.pathsep.join([str(stub.parent), *([path] if path else [])])
    probe = [sys.executable, "-c", "import httptools"]
    assert subprocess.run(probe, env=darkroom.env, capture_output=True).returncode != 0


@pytest.fixture(params=PARSERS)
def server(request, tmp_path) -> Iterator[Darkroom]:
    darkroom = Darkroom(
        tmp_path,
        None,
        max_header_bytes=CAP,
        header_timeout_seconds=2,
        body_timeout_seconds=2,
        max_connections=100,
    )
    if request.param == "h11":
        hide_httptools(darkroom, tmp_path)
    darkroom.start_server("--workers", "0")
    try:
        yield darkroom
    finally:
        darkroom.stop()


def test_serve_picks_httptools_where_it_is_installed_and_h11_otherwise(monkeypatch):
    assert issubclass(limited_protocol(16_384, 15), HttpToolsProtocol)
    monkeypatch.setitem(sys.modules, "httptools", None)  # an install without it
    assert issubclass(limited_protocol(16_384, 15), H11Protocol)


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


def test_a_url_just_past_the_cap_is_refused(server):
    sock = connect(server)
    url = b"/healthz?q=" + b"a" * (CAP + 100)
    send_all_or_reset(sock, b"GET " + url + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_refused(answer(sock))


def request(header_bytes: int, *, close: bool = False) -> bytes:
    """A GET /healthz whose headers take about `header_bytes`, below the cap."""
    connection = b"Connection: close\r\n" if close else b""
    return (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + connection
        + b"X-Under: "
        + b"a" * header_bytes
        + b"\r\n\r\n"
    )


def statuses(reply: bytes) -> list[bytes]:
    return re.findall(rb"HTTP/1\.1 (\d{3}) ", reply)  # answers follow each other's bodies


def test_heads_under_the_cap_are_served_in_one_read_trickled_or_pipelined(server):
    under = CAP - 1_000
    sock = connect(server)
    sock.sendall(request(under, close=True))
    assert statuses(answer(sock)) == [b"200"]

    sock = connect(server)
    data = request(under, close=True)
    for start in range(0, len(data), 500):  # many reads, each counted while the head is open
        sock.sendall(data[start : start + 500])
        time.sleep(0.001)
    assert statuses(answer(sock)) == [b"200"]

    sock = connect(server)
    pipelined = request(under) + request(under) + request(under, close=True)
    sock.sendall(pipelined[: len(pipelined) // 2])  # ends one head and starts the next
    time.sleep(0.1)
    sock.sendall(pipelined[len(pipelined) // 2 :])
    assert statuses(answer(sock)) == [b"200", b"200", b"200"]


def test_a_body_sent_with_its_headers_does_not_count_towards_the_cap(server):
    body = b'{"model": "' + b"m" * (2 * CAP) + b'"}'
    sock = connect(server)
    sock.sendall(
        b"POST /v1/media/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    assert statuses(answer(sock)) == [b"200"]  # answered (without a key), not refused


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


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def test_endless_headers_on_a_few_connections_leave_the_server_memory_flat(server):
    # The attack that grew a server under plain httptools by a gigabyte in seconds: a few
    # connections that send one header, fast and without end.
    pid = server.processes[0].pid
    assert healthy(server)
    before = rss_bytes(pid)
    per_connection, chunk = 16 * 2**20, b"a" * 65_536
    socks = [connect(server) for _ in range(4)]
    for sock in socks:
        send_all_or_reset(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: ")
    sent = dict.fromkeys(socks, 0)
    while open_socks := [sock for sock, count in sent.items() if 0 <= count < per_connection]:
        for sock in open_socks:
            try:
                sock.sendall(chunk)
                sent[sock] += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                sent[sock] = -1  # cut off
    grown = rss_bytes(pid) - before  # measured while the connections are still open
    assert grown < per_connection, f"the server grew by {grown / 2**20:.0f} MB"
    for sock in socks:
        assert_refused(answer(sock))
    assert healthy(server)
