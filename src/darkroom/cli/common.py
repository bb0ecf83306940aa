"""What the operator's commands share: settings from options and the environment, and the
composition root opened with configuration errors as a plain message and exit code 2.

A configuration that cannot work (a catalog entry, S3 without credentials) is the operator's
to fix, so it is one line naming what to set, never a traceback
(tests/e2e/test_startup_checks.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import typer

from darkroom import logs
from darkroom.app import App
from darkroom.config import Settings
from darkroom.errors import ConfigurationError

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML file with the model catalog (DARKROOM_CONFIG)")
]


def settings_from(**overrides: Any) -> Settings:
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    logs.configure(settings.log_level)
    return settings


def open_app(settings: Settings) -> App:
    try:
        return App.from_settings(settings)
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@contextlib.asynccontextmanager
async def migrated_app(config: Path | None) -> AsyncIterator[App]:
    """The App of the settings, its schema and storage readied, closed on leaving."""
    async with open_app(settings_from(config=config)) as app:
        await app.migrate()
        yield app
