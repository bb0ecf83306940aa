"""The node commands: `darkroom serve`, `darkroom worker`, `darkroom migrate`."""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import signal
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

import typer

from darkroom.app import App
from darkroom.cli.common import ConfigOption, open_app, settings_from
from darkroom.config import Settings
from darkroom.worker.pool import configuration_problems


def migrate(config: ConfigOption = None) -> None:
    """Create or upgrade the database schema."""

    async def run() -> None:
        async with open_app(settings_from(config=config)) as app:
            await app.migrate()

    asyncio.run(run())
    typer.echo("database is up to date", err=True)


def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (DARKROOM_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (DARKROOM_PORT)")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Workers in this process; 0 = API only (DARKROOM_WORKERS)")
    ] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="API processes sharing the port; more than 1 needs --workers 0 "
            "(DARKROOM_PROCESSES)",
        ),
    ] = None,
    config: ConfigOption = None,
    first_key: Annotated[
        bool, typer.Option("--first-key", help="Create and print a key if none exists")
    ] = False,
) -> None:
    """Migrate the database and serve the API (and workers) until stopped."""
    import uvicorn

    from darkroom.api import serving
    from darkroom.api.processes import serve_processes

    settings = settings_from(
        host=host, port=port, workers=workers, processes=processes, config=config
    )
    _refuse_multiplied_workers(settings)
    app = open_app(settings)  # fail early on a configuration that cannot work
    if settings.public_url is None and settings.host in ("0.0.0.0", "::", ""):
        typer.echo(
            f"warning: links to images will name {settings.base_url}, which other machines "
            "cannot reach; set DARKROOM_PUBLIC_URL to the address clients use",
            err=True,
        )
    asyncio.run(_prepare(app, first_key))
    typer.echo(f"Open {settings.base_url}/ in a browser: the playground, the gallery, /console")
    _export_options(settings)
    options = dict(
        app=serving.APP_FACTORY,
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=_log_config(),
        timeout_graceful_shutdown=int(settings.lease_seconds),
        timeout_keep_alive=int(settings.keep_alive_seconds),
        http=serving.HTTP_PROTOCOL,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        limit_concurrency=settings.max_connections,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    if settings.processes == 1:
        uvicorn.run(**options)
    else:  # a socket each, so that connections are spread between them (api/processes.py)
        raise typer.Exit(serve_processes(settings.processes, options))


# Query parameters that grant access and so never reach a log: a file link's signature, and the
# names clients commonly put keys under (the API reads keys from the header only, but a client
# that sends one in the URL should not have it written down either).
SECRET_QUERY_PARAMETERS = frozenset({"sig", "signature", "key", "api_key", "token", "access_token"})


class RedactSecrets(logging.Filter):
    """Rewrites the path of uvicorn's access line (its args: client, method, path, version,
    status) so secret query values read `REDACTED`; the path and other parameters stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def redact_query(target: str) -> str:
    # Split by hand: urlsplit reads a path that starts with // as a host and may raise.
    path, mark, query = target.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(name.lower() in SECRET_QUERY_PARAMETERS for name, _ in pairs):
        return target
    redacted = [
        (name, "REDACTED" if name.lower() in SECRET_QUERY_PARAMETERS else value)
        for name, value in pairs
    ]
    return f"{path}{mark}{urlencode(redacted, safe='/:')}"


def _log_config() -> dict[str, Any]:
    """uvicorn's own logging set-up, with the access lines passed through RedactSecrets."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_secrets"] = {"()": RedactSecrets}
    config["handlers"]["access"].setdefault("filters", []).append("redact_secrets")
    return config


def _refuse_multiplied_workers(settings: Settings) -> None:
    """Each of N processes would start its own workers and hold its own models (N copies of
    each in memory, N claim loops): API processes serve the API, `darkroom worker` the tasks."""
    if settings.processes > 1 and settings.workers > 0:
        typer.echo(
            f"error: --processes {settings.processes} serves the API only: add --workers 0 and "
            "run `darkroom worker` beside it for the tasks",
            err=True,
        )
        raise typer.Exit(2)


def _export_options(settings: Settings) -> None:
    """The command-line options into this process's environment, which uvicorn's processes
    inherit: each rebuilds the same settings from it (darkroom.api.serving.app_from_env)."""
    for name in ("host", "port", "workers", "processes", "config"):
        value = getattr(settings, name)
        if value is not None:
            os.environ[f"DARKROOM_{name.upper()}"] = str(value)


async def _prepare(app: App, first_key: bool) -> None:
    async with app:
        if app.settings.workers > 0:
            await _check_engines(app, app.catalog.ids())
        await app.migrate()
        if first_key and await app.keys.count() == 0:
            raw, _ = await app.keys.create("first")
            _print_welcome(app.settings, raw, app.catalog.ids())


async def _check_engines(app: App, models: list[str]) -> None:
    problems = await configuration_problems(app.catalog, models, app.settings.data_dir)
    if problems:
        for problem in problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)


def _print_welcome(settings: Settings, raw: str, models: list[str]) -> None:
    """The key once, as a line to paste into a shell; the curls name it as $KEY (this goes to
    the stream the access log writes to, so the key should appear there no more than it must)."""
    model = models[0] if models else "MODEL"
    typer.echo(
        f"\nCreated your first API key (it is shown only once; keep it somewhere safe):\n\n"
        f"  export KEY={raw}\n\n"
        f"Try it:\n\n"
        f'  curl -s {settings.base_url}/v1/media/create -H "Authorization: $KEY" '
        f"-H 'Content-Type: application/json' "
        f'-d \'{{"model": "{model}", "ar": "16:9", "prompt": "a lighthouse at dusk"}}\'\n\n'
        f'  curl -s "{settings.base_url}/v1/media/result?task_id=TASK_ID" '
        f'-H "Authorization: $KEY"\n'
    )


def worker(
    concurrency: Annotated[int, typer.Option(help="Workers in this process")] = 1,
    models: Annotated[
        str | None, typer.Option(help="Comma-separated model ids this node serves (default: all)")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Run workers in their own process against the shared database, until SIGTERM."""
    settings = settings_from(config=config)
    app = open_app(settings)
    chosen = [m.strip() for m in models.split(",") if m.strip()] if models else None
    unknown = sorted(set(chosen or []) - set(app.catalog.ids()))
    if unknown:
        typer.echo(
            f"error: unknown models {unknown}; the catalog has {app.catalog.ids()}", err=True
        )
        raise typer.Exit(2)
    asyncio.run(_run_workers(app, concurrency, chosen))


async def _run_workers(app: App, concurrency: int, models: list[str] | None) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    async with app:  # on leaving, finishes the batches in hand and claims nothing more
        await _check_engines(app, models or app.catalog.ids())
        await app.migrate()
        app.start_workers(concurrency, models)
        await stopping.wait()


def register(cli: typer.Typer) -> None:
    cli.command()(migrate)
    cli.command()(serve)
    cli.command()(worker)
