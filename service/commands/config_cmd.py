"""`sleuth config`: show and check settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from core.errors import ConfigurationError
from core.settings import load_settings

app = typer.Typer(help="Show and check settings (secrets are always masked).", no_args_is_help=True)
console = Console()
EnvFile = Annotated[Path, typer.Option(help="a .env file to read")]


@app.command("show")
def show(env_file: EnvFile = Path(".env")) -> None:
    """Print the effective settings as JSON, secrets masked."""
    try:
        settings = load_settings(env_file)
    except ConfigurationError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None
    console.print_json(json.dumps(settings.model_dump(mode="json")))


@app.command("check")
def check(env_file: EnvFile = Path(".env")) -> None:
    """Validate settings for their profile; exit 2 with the reasons when they are unsafe."""
    try:
        settings = load_settings(env_file)
    except ConfigurationError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None
    console.print(f"[green]settings are valid for profile {settings.profile.value}[/green]")
