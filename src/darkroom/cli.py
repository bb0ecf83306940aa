"""The `darkroom` command: serve, worker, migrate, keys; generate, result, cancel (cli_client)."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from darkroom import cli_client, logs
from darkroom.config import Settings
from darkroom.engines import CatalogError
from darkroom.services import Services
from darkroom.worker.engines import configuration_problems

app = typer.Typer(help="Darkroom: self-hosted asynchronous image generation.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
cli_client.register(app)  # generate, result, cancel: the client's commands

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML file with the model catalog (DARKROOM_CONFIG)")
]


def _settings(**overrides: Any) -> Settings:
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    logs.configure(settings.log_level)
    return settings


def _open(settings: Settings) -> Services:
    try:
        return Services.open(settings)
    except CatalogError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def migrate(config: ConfigOption = None) -> None:
    """Create or upgrade the database schema."""

    async def run() -> None:
        services = _open(_settings(config=config))
        try:
            await services.migrate()
        finally:
            await services.close()

    asyncio.run(run())
    typer.echo("database is up to date", err=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (DARKROOM_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (DARKROOM_PORT)")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Workers in this process; 0 = API only (DARKROOM_WORKERS)")
    ] = None,
    config: ConfigOption = None,
    first_key: Annotated[
        bool, typer.Option("--first-key", help="Create and print a key if none exists")
    ] = False,
) -> None:
    """Migrate the database and serve the API (and workers) until stopped."""
    import uvicorn

    from darkroom.api import create_app

    settings = _settings(host=host, port=port, workers=workers, config=config)
    _open(settings)  # fail early on a bad catalog
    if settings.public_url is None and settings.host in ("0.0.0.0", "::", ""):
        typer.echo(
            f"warning: links to images will name {settings.base_url}, which other machines "
            "cannot reach; set DARKROOM_PUBLIC_URL to the address clients use",
            err=True,
        )
    asyncio.run(_prepare(settings, first_key))
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.lease_seconds),
        timeout_keep_alive=int(settings.keep_alive_seconds),
    )


async def _prepare(settings: Settings, first_key: bool) -> None:
    services = Services.open(settings)
    try:
        if settings.workers > 0:
            await _check_engines(services, services.catalog.ids())
        await services.migrate()
        if first_key and await services.keys.count() == 0:
            raw, _ = await services.keys.create("first")
            _print_welcome(settings, raw, services.catalog.ids())
    finally:
        await services.close()


async def _check_engines(services: Services, models: list[str]) -> None:
    problems = await configuration_problems(services.catalog, models, services.settings.data_dir)
    if problems:
        for problem in problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)


def _print_welcome(settings: Settings, raw: str, models: list[str]) -> None:
    model = models[0] if models else "MODEL"
    typer.echo(
        f"\nCreated your first API key (it is shown only once):\n\n  {raw}\n\n"
        f"Try it:\n\n  curl -s {settings.base_url}/v1/media/create -H 'Authorization: {raw}' "
        f"-H 'Content-Type: application/json' "
        f'-d \'{{"model": "{model}", "ar": "16:9", "prompt": "a lighthouse at dusk"}}\'\n\n'
        f"  curl -s '{settings.base_url}/v1/media/result?task_id=TASK_ID' "
        f"-H 'Authorization: {raw}'\n"
    )


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Workers in this process")] = 1,
    models: Annotated[
        str | None, typer.Option(help="Comma-separated model ids this node serves (default: all)")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Run workers in their own process against the shared database, until SIGTERM."""
    settings = _settings(config=config)
    services = _open(settings)
    chosen = [m.strip() for m in models.split(",") if m.strip()] if models else None
    unknown = sorted(set(chosen or []) - set(services.catalog.ids()))
    if unknown:
        typer.echo(
            f"error: unknown models {unknown}; the catalog has {services.catalog.ids()}", err=True
        )
        raise typer.Exit(2)
    asyncio.run(_run_workers(services, concurrency, chosen))


async def _run_workers(services: Services, concurrency: int, models: list[str] | None) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await _check_engines(services, models or services.catalog.ids())
    await services.migrate()
    services.start_workers(concurrency, models)
    await stopping.wait()
    await services.close()  # finishes the batches in hand, claims nothing more


@keys_app.command("create")
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
        services = _open(_settings(config=config))
        try:
            await services.migrate()
            raw, _ = await services.keys.create(name, models=allowed, credits=credits)
            return raw
        finally:
            await services.close()

    typer.echo(asyncio.run(run()))


@keys_app.command("list")
def keys_list(config: ConfigOption = None) -> None:
    """List keys (never the keys themselves: they are stored hashed)."""

    async def run() -> list[dict[str, Any]]:
        services = _open(_settings(config=config))
        try:
            await services.migrate()
            return [vars(key) for key in await services.keys.list()]
        finally:
            await services.close()

    for key in asyncio.run(run()):
        typer.echo(json.dumps(key))


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's id or prefix as listed, or the key")],
    config: ConfigOption = None,
) -> None:
    """Revoke a key: its requests are refused from now on."""

    async def run() -> bool:
        services = _open(_settings(config=config))
        try:
            await services.migrate()
            return await services.keys.revoke(key)
        finally:
            await services.close()

    if not asyncio.run(run()):
        typer.echo(f"error: no live key matches {key!r}", err=True)
        raise typer.Exit(1)
    typer.echo("revoked", err=True)
