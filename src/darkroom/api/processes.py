"""`darkroom serve --processes N`: N API processes on one port, each with a listening socket of
its own (SO_REUSEPORT), so that the kernel spreads connections between them.

uvicorn's own `--workers` gives every process the one socket, and whichever process wakes first
accepts whatever is waiting: under a burst of new connections one process took nearly all of
them and the others sat idle (bench/api.py measured 8.0 s of CPU against 0.02 s; issue 15). With
a socket each, the kernel hands each new connection to one of them by the hash of its addresses.

The parent only supervises: it starts the N processes (multiprocessing's spawn, so each imports
the app afresh, as `serving.app_from_env` expects), passes SIGTERM or SIGINT on to them once,
and waits for them to finish their requests. Each child is in a process group of its own, so a
terminal's Ctrl-C reaches the parent alone and the children see one signal, not two (uvicorn
takes a second one as "exit now"). If a child exits on its own, the parent stops the others
and exits with an error, for the service manager to restart the whole server; a server that
silently runs on fewer processes would be worse.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from typing import Any

log = logging.getLogger("uvicorn.error")

BACKLOG = 2048  # uvicorn's default


def serve_processes(count: int, uvicorn_options: dict[str, Any]) -> int:
    """Runs `count` uvicorn servers of `uvicorn_options` (uvicorn.Config's keywords) on their
    own SO_REUSEPORT sockets until a signal or until one exits; answers the exit status."""
    import uvicorn

    uvicorn.Config(**uvicorn_options)  # sets up this process's logging, as each child's does
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(
            target=_serve_one,
            args=(uvicorn_options, os.getpid()),
            name=f"darkroom-api-{index + 1}",
        )
        for index in range(count)
    ]
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    for child in children:
        child.start()
    log.info("Started %d API processes: %s", count, ", ".join(str(c.pid) for c in children))
    status = 0
    while not stopping.wait(0.5):
        ended = [child for child in children if not child.is_alive()]
        if ended:
            child = ended[0]
            log.error("API process %s exited (%s); stopping the others", child.pid, child.exitcode)
            status = 1
            break
    for child in children:
        if child.is_alive() and child.pid is not None:
            os.kill(child.pid, signal.SIGTERM)
    for child in children:
        child.join()
    return status


def _serve_one(uvicorn_options: dict[str, Any], parent: int) -> None:
    import uvicorn

    os.setpgid(0, 0)  # the terminal's signals go to the parent, which passes them on once
    threading.Thread(target=_stop_when_orphaned, args=(parent,), daemon=True).start()
    config = uvicorn.Config(**uvicorn_options)
    sock = reuse_port_socket(config.host, config.port)
    uvicorn.Server(config).run(sockets=[sock])


def _stop_when_orphaned(parent: int) -> None:
    """A parent killed outright (SIGKILL) passes nothing on: its children then stop on their
    own, the graceful way, rather than keep the port."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port) that other processes may bind too."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(address)
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock
