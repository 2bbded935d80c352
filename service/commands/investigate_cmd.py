"""`sleuth investigate`: investigate a ticket and print a cited diagnosis."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from agent.factory import investigator
from agent.runner import replay_line
from connectors.settings import load_connector_settings
from core.domain import Ticket
from core.errors import SleuthError
from core.settings import Settings, load_settings
from core.telemetry import Metrics, configure_logging
from sandbox.cases import CaseFormatError, load_case
from sandbox.world import SandboxWorld

console = Console(stderr=True)
out = Console()


class Progress:
    """Shows graph steps and connector calls as they happen."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, event: dict[str, Any]) -> None:
        if self.quiet:
            return
        if event.get("step") == "gather":
            colour = "green" if event["outcome"] == "ok" else "yellow"
            console.print(f"  [dim]gather[/dim] {event['source']}.{event['operation']} "
                          f"[{colour}]{event['outcome']}[/{colour}] "
                          f"{event['evidence']} item(s) {event['ms']} ms")
        else:
            console.print(f"[bold]{event.get('step')}[/bold] {event.get('detail', '')}")


def _load_ticket(path: Path) -> Ticket:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"{path}: cannot read the ticket: {exc}") from None
    if isinstance(raw, dict) and "ticket" in raw:
        raw = raw["ticket"]
    try:
        return Ticket.model_validate(raw)
    except ValueError as exc:
        raise typer.BadParameter(f"{path}: not a valid ticket: {exc}") from None


async def run_case(case_dir: Path, settings: Settings, progress: Progress,
                   pins: dict[str, str] | None = None) -> tuple[dict[str, Any], str, float]:
    """Investigate a case's ticket against its world in the sandbox."""
    loaded = load_case(case_dir)
    world = await asyncio.to_thread(lambda: SandboxWorld(loaded).start())
    try:
        async with investigator(
            settings, world.connector_settings(), pins=pins, metrics=Metrics(),
            effectors=lambda engine: world.effector_set(engine, settings.resilience),
        ) as inv:
            started = time.perf_counter()
            record = await inv.investigate(loaded.case.ticket, on_event=progress)
            return record, loaded.id, (time.perf_counter() - started) * 1000
    finally:
        await asyncio.to_thread(world.stop)


def render(record: dict[str, Any]) -> None:
    """Print an investigation record for people."""
    diagnosis = record.get("diagnosis")
    if diagnosis is None:
        out.print(Panel("No diagnosis: handed over to a person.", title="escalated"))
        return
    head = (f"[bold]{diagnosis['root_cause']}[/bold]  severity {diagnosis['severity']}  "
            f"confidence {diagnosis['confidence']:.2f}  tier {record['tier']}")
    body = [head, "", diagnosis["summary"]]
    if diagnosis["cited"]:
        body += ["", "[bold]Evidence cited[/bold]"]
        index = {(e["source"], e["ref"]): e for e in record["evidence"]}
        for cite in diagnosis["cited"]:
            item = index.get((cite["source"], cite["ref"]))
            line = item["summary"] if item else ""
            body.append(f"• {cite['source']}:{cite['ref']} — {line}")
    if record["degraded_sources"]:
        body += ["", f"[yellow]Degraded sources: {', '.join(record['degraded_sources'])}[/yellow]"]
    out.print(Panel("\n".join(body), title=f"ticket {record['ticket_id']}"))
    if diagnosis.get("reply_draft"):
        out.print(Panel(diagnosis["reply_draft"], title="customer reply draft"))
    table = Table(title="Proposed actions, as governance decided them")
    for column in ("action", "level", "status", "why"):
        table.add_column(column, overflow="fold")
    for action in record["actions"]:
        table.add_row(action["type"], action.get("level", "-"), action["status"],
                      action.get("why") or action.get("reason", ""))
    out.print(table)
    if record.get("paused"):
        out.print(f"[yellow]Waiting for approvals: decide with `sleuth approvals list`, then "
                  f"`sleuth investigate --resume {record['investigation_id']}`.[/yellow]")


def investigate(
    case: Annotated[Path | None,
                    typer.Option(help="a case folder: its world in the sandbox")] = None,
    ticket: Annotated[Path | None, typer.Option(help="a ticket JSON/YAML file: configured "
                                                     "connectors")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the replay-results line")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display")] = False,
    resume: Annotated[str | None, typer.Option(
        help="an investigation id: carry it on from its checkpoint (after approvals were "
             "decided, or after a crash)")] = None,
    pin: Annotated[list[str] | None, typer.Option(
        help="ID@VERSION: use this playbook version (repeatable), e.g. to rerun an "
             "investigation with the versions it used")] = None,
) -> None:
    """Investigate one ticket and print the diagnosis with its evidence."""
    if sum(x is not None for x in (case, ticket, resume)) != 1:
        raise typer.BadParameter("give exactly one of --case, --ticket or --resume")
    pins = {}
    for item in pin or []:
        pid, _, version = item.partition("@")
        if not pid or not version:
            raise typer.BadParameter(f"--pin takes ID@VERSION, got {item!r}")
        pins[pid] = version
    configure_logging(level="ERROR")
    progress = Progress(quiet or as_json)
    try:
        settings = load_settings()
        if resume is not None:
            async def carry_on() -> dict[str, Any]:
                async with investigator(settings, load_connector_settings(), pins=pins) as inv:
                    return await inv.investigate_or_resume(resume, on_event=progress)

            record = asyncio.run(carry_on())
            case_id, wall = record["ticket_id"], record.get("wall_ms", 0.0)
        elif case is not None:
            record, case_id, wall = asyncio.run(run_case(case, settings, progress, pins))
        else:
            assert ticket is not None
            parsed = _load_ticket(ticket)

            async def live() -> dict[str, Any]:
                async with investigator(settings, load_connector_settings(), pins=pins) as inv:
                    return await inv.investigate(parsed, on_event=progress)

            record = asyncio.run(live())
            case_id, wall = parsed.id, record["wall_ms"]
    except (SleuthError, CaseFormatError) as exc:
        console.print(f"[red]{exc.code}: {exc.message}[/red]")
        raise typer.Exit(2) from None
    except KeyError as exc:
        console.print(f"[red]{exc.args[0]}[/red]")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(replay_line(case_id, record, wall_ms=wall)))
    else:
        render(record)
