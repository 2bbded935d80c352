"""`sleuth serve`: the HTTP service, with embedded workers by default (to be written)."""

from __future__ import annotations

import typer


def serve() -> None:
    """Start the HTTP service (webhooks, API) and, when the queue is embedded, its workers."""
    raise typer.Exit(2)
