"""`sleuth serve`: the HTTP service, with embedded workers by default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.errors import SleuthError
from core.settings import load_settings
from core.telemetry import configure_logging
from service.server import GRACE_S, Server


def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on "
                                                  "[default: service.host]")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="port; 0 picks a free "
                                             "one [default: service.port]")] = None,
    workers: Annotated[bool | None, typer.Option(
        "--workers/--no-workers", help="run investigations in this process [default: when "
                                       "the queue is embedded]")] = None,
    concurrency: Annotated[int | None, typer.Option(
        min=1, max=256, help="investigations run at once [default: queue.concurrency]")] = None,
    sandbox_cases: Annotated[Path | None, typer.Option(
        help="investigate against these cases' sandbox worlds (demo, tests)")] = None,
    grace: Annotated[float, typer.Option(
        min=0, help="seconds running investigations get to finish on SIGTERM; then they are "
                    "left to their lease and resumed by the next worker")] = GRACE_S,
    env_file: Annotated[Path, typer.Option(help="settings file")] = Path(".env"),
) -> None:
    """Start the HTTP service (webhooks, API) and, when the queue is embedded, its workers."""
    service: dict[str, object] = {}
    if host is not None:
        service["host"] = host
    if port is not None:
        service["port"] = port
    if workers is not None:
        service["embedded_workers"] = workers
    if sandbox_cases is not None:
        service["sandbox_cases"] = sandbox_cases
    try:
        # explicit options win over the environment, field by field
        settings = load_settings(env_file, **({"service": service} if service else {}))
    except SleuthError as exc:
        typer.echo(f"invalid settings: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(level=settings.telemetry.log_level, json=settings.telemetry.log_json)
    server = Server(settings, concurrency=concurrency, grace_s=grace)

    def started(url: str) -> None:
        # stdout, flushed: scripts and tests read the address from here
        typer.echo(f"sleuth listening on {url} ({server.describe()})")
        typer.echo(f"  webhooks: {url}/v1/webhooks/{{zendesk,intercom,generic}}   "
                   f"API: {url}/docs   health: {url}/readyz   metrics: {url}/metrics")

    try:
        status = server.run(on_started=started)
    except OSError as exc:  # the port is taken, the address is not local
        typer.echo(f"cannot listen on {settings.service.host}:{settings.service.port}: {exc}",
                   err=True)
        raise typer.Exit(2) from None
    except SleuthError as exc:
        typer.echo(f"{exc.code}: {exc.message}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(status)
