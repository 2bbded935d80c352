"""`sleuth audit`: verify the tamper-evident audit chain, export it, show one investigation."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from core.errors import SleuthError
from core.settings import load_settings
from core.telemetry import scrub_text
from governance.audit import AuditLog, VerifyReport, verify_lines
from governance.audit_store import canonical_json, iso_utc
from governance.db import make_engine

app = typer.Typer(
    help="The tamper-evident audit log: verify the chain, export it, show an investigation.",
    no_args_is_help=True,
)
console = Console()
DatabaseOption = Annotated[
    str | None,
    typer.Option("--database", help="database URL (default: SLEUTH_DATABASE_URL from settings)"),
]


@contextmanager
def _audit_log(database: str | None) -> Iterator[AuditLog]:
    """Open the audit log; exit 2 with a masked message when the database is unusable."""
    url = database or load_settings().database_url.get_secret_value()
    engine = None
    try:
        engine = make_engine(url)
        yield AuditLog(engine)
    except SQLAlchemyError as exc:
        reason = scrub_text(str(getattr(exc, "orig", None) or exc)).splitlines()[0]
        console.print(
            f"[red]cannot read the audit log at {escape(scrub_text(url))}: {escape(reason)}[/red]"
        )
        raise typer.Exit(2) from None
    except SleuthError as exc:
        console.print(f"[red]{escape(exc.message)}[/red]")
        raise typer.Exit(2) from None
    finally:
        if engine is not None:
            engine.dispose()


def _print_report(report: VerifyReport) -> None:
    if report.ok:
        console.print(
            f"[green]✓ audit chain intact: {report.checked} entries, "
            f"head {report.head_hash}[/green]"
        )
        return
    console.print(
        f"[red]✗ audit chain broken at seq {report.first_broken_seq}: "
        f"{report.problem} ({escape(report.detail)}); "
        f"{report.checked} entries intact before it[/red]"
    )
    raise typer.Exit(1)


@app.command("verify")
def verify(
    database: DatabaseOption = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="verify an export of the whole chain instead")
    ] = None,
) -> None:
    """Walk the chain; exit 1 naming the first edited, deleted, inserted or reordered entry."""
    if file is not None:
        try:
            with file.open(encoding="utf-8") as lines:
                report = verify_lines(lines)
        except (OSError, SleuthError) as exc:
            console.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(2) from None
        _print_report(report)
        return
    with _audit_log(database) as log:
        report = log.verify()
    _print_report(report)


@app.command("export")
def export(
    database: DatabaseOption = None,
    investigation: Annotated[
        str | None, typer.Option("--investigation", help="only this investigation's entries")
    ] = None,
    out: Annotated[str, typer.Option("--out", help="a file to write, or - for stdout")] = "-",
) -> None:
    """Write entries as JSON lines in chain order."""
    with _audit_log(database) as log:
        if out == "-":
            count = log.export(sys.stdout, investigation_id=investigation)
        else:
            with Path(out).open("w", encoding="utf-8") as stream:
                count = log.export(stream, investigation_id=investigation)
    if out != "-":
        console.print(f"wrote {count} entries to {escape(out)}")


@app.command("show")
def show(
    investigation_id: Annotated[str, typer.Argument(help="the investigation to show")],
    database: DatabaseOption = None,
) -> None:
    """Print one investigation's entries as a table; exit 1 when it has none."""
    with _audit_log(database) as log:
        entries = log.entries(investigation_id=investigation_id)
    if not entries:
        console.print(f"[yellow]no audit entries for {escape(investigation_id)}[/yellow]")
        raise typer.Exit(1)
    table = Table(title=f"Audit trail of {escape(investigation_id)}")
    for column in ("seq", "at (UTC)", "kind", "actor", "payload"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        payload = canonical_json(entry.payload)
        if len(payload) > 160:
            payload = payload[:157] + "…"
        table.add_row(
            str(entry.seq), iso_utc(entry.at)[:23], entry.kind, escape(entry.actor), escape(payload)
        )
    console.print(table)
