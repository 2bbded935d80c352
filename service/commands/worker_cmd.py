"""`sleuth worker`: a scale-out worker taking investigation jobs from the shared queue.

Scale-out settings come from the environment, e.g.::

    SLEUTH_QUEUE__BACKEND=procrastinate SLEUTH_DATABASE_URL=postgresql://sleuth@db/sleuth \\
    SLEUTH_BREAKER_BACKEND=redis SLEUTH_REDIS_URL=redis://cache:6379/0 sleuth worker

SIGTERM or SIGINT stops taking jobs and lets the running ones finish; a second signal
exits at once (the jobs it held are taken again by other workers once its heartbeat
stops).
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from core.errors import SleuthError
from core.settings import Settings, load_settings
from core.telemetry import configure_logging, get_logger

log = get_logger("sleuth.worker")

EMBEDDED_REFUSED = (
    "sleuth worker takes jobs from a shared queue, and this one is embedded (a job table "
    "in {database}), which `sleuth serve` consumes itself.\n"
    "For scale-out set SLEUTH_QUEUE__BACKEND=procrastinate and "
    "SLEUTH_DATABASE_URL=postgresql://…; to run a worker on the embedded queue anyway, "
    "pass --embedded."
)


def _install_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("worker_exit_now", signal=name)
            # a second signal means now: jobs still held are recovered by other workers
            os._exit(128 + signum)
        log.info("worker_stopping", signal=name, detail="running jobs finish first")
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


async def _work(settings: Settings, *, concurrency: int | None, name: str | None) -> None:
    from service.context import build_context
    from service.workers import run_worker, worker_name

    stop = asyncio.Event()
    _install_signals(asyncio.get_running_loop(), stop)
    ctx = await asyncio.to_thread(build_context, settings)
    try:
        await run_worker(ctx, stop, concurrency=concurrency, name=name or worker_name())
    finally:
        await ctx.aclose()


def worker(
    concurrency: Annotated[int | None, typer.Option(
        min=1, max=256, help="investigations run at once [default: queue.concurrency]")] = None,
    name: Annotated[str | None, typer.Option(
        help="this worker's name in logs and investigations [default: worker@host:pid]")] = None,
    embedded: Annotated[bool, typer.Option(
        "--embedded", help="allow the embedded queue (normally `sleuth serve`'s own)")] = False,
    env_file: Annotated[Path, typer.Option(help="settings file")] = Path(".env"),
) -> None:
    """Run a worker: take investigation jobs from the queue until stopped."""
    try:
        settings = load_settings(env_file)
    except SleuthError as exc:
        typer.echo(f"invalid settings: {exc}", err=True)
        raise typer.Exit(2) from None
    if settings.queue.backend == "embedded" and not embedded:
        database = settings.database_url.get_secret_value().split("://", 1)[0]
        typer.echo(EMBEDDED_REFUSED.format(database=database), err=True)
        raise typer.Exit(2)
    configure_logging(level=settings.telemetry.log_level, json=settings.telemetry.log_json)
    try:
        asyncio.run(_work(settings, concurrency=concurrency, name=name))
    except SleuthError as exc:  # the queue cannot be reached, a bad taxonomy or reviewers
        log.error("worker_failed", code=exc.code, error=exc.message)
        typer.echo(f"{exc.code}: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except SQLAlchemyError as exc:  # the database cannot be reached
        cause = getattr(exc, "orig", None) or exc
        log.error("worker_failed", code="database_unavailable", error=str(cause)[:500])
        typer.echo(f"database_unavailable: {cause}", err=True)
        raise typer.Exit(1) from None
