"""`sleuth worker`: a scale-out worker on the configured queue (to be written)."""

from __future__ import annotations

import typer


def worker() -> None:
    """Run a worker: take investigation jobs from the queue until stopped."""
    raise typer.Exit(2)
