"""`darkroom keys`: create, list and revoke API keys."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer

from darkroom.cli.common import ConfigOption, migrated_app

keys = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


@keys.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A label for the key")] = "default",
    models: Annotated[str | None, typer.Option(help="Comma-separated models it may use")] = None,
    credits: Annotated[
        int | None, typer.Option(help="Tasks it may create (default: no limit)")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Create a key and print it alone on stdout (it is never shown again)."""
    allowed = [m.strip() for m in models.split(",") if m.strip()] if models else None

    async def run() -> str:
        async with migrated_app(config) as app:
            raw, _ = await app.keys.create(name, models=allowed, credits=credits)
            return raw

    typer.echo(asyncio.run(run()))


@keys.command("list")
def keys_list(config: ConfigOption = None) -> None:
    """List keys (never the keys themselves: they are stored hashed)."""

    async def run() -> list[dict[str, Any]]:
        async with migrated_app(config) as app:
            return [vars(key) for key in await app.keys.list()]

    for key in asyncio.run(run()):
        typer.echo(json.dumps(key))


@keys.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's id or prefix as listed, or the key")],
    config: ConfigOption = None,
) -> None:
    """Revoke a key: its requests are refused from now on."""

    async def run() -> bool:
        async with migrated_app(config) as app:
            return await app.keys.revoke(key)

    if not asyncio.run(run()):
        typer.echo(f"error: no live key matches {key!r}", err=True)
        raise typer.Exit(1)
    typer.echo("revoked", err=True)
