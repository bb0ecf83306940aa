"""What the operator's commands share: settings from options and the environment, and the
composition root opened with configuration errors as a plain message and exit code 2."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from darkroom import logs
from darkroom.app import App
from darkroom.config import Settings
from darkroom.engines import CatalogError

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
    except CatalogError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
