"""The `darkroom` command. Operators: serve, worker, migrate (server.py) and keys (keys.py);
clients: generate, result, cancel (client.py)."""

from __future__ import annotations

import typer

from darkroom.cli import client, keys, server

app = typer.Typer(help="Darkroom: self-hosted asynchronous image generation.", no_args_is_help=True)
app.add_typer(keys.keys, name="keys")
server.register(app)
client.register(app)

__all__ = ["app"]
