"""`sleuth demo`: what sleuth can do so far, on embedded defaults."""

from __future__ import annotations

import asyncio
import fnmatch
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from agent.runner import replay_line
from core.settings import load_settings
from core.telemetry import Metrics, configure_logging
from sandbox.cases import discover, load_case
from sandbox.models import ModelSandbox
from service.commands.investigate_cmd import Progress, render, run_case
from service.demo import ScenarioResult, run_demo

DEMO_CASES = Path(__file__).resolve().parents[2] / "evals" / "cases"


def _console() -> Console:
    probe = Console()
    # logs and CI have no terminal: do not squeeze the table into 80 columns
    return probe if probe.is_terminal else Console(width=160)


console = _console()


def _table(results: list[ScenarioResult]) -> Table:
    table = Table(title="Model gateway against the loopback Anthropic/OpenAI servers")
    for column in ("scenario", "served by", "tiers tried", "ms", "cost USD", "what it shows"):
        table.add_column(column, overflow="fold")
    for r in results:
        tried = " → ".join(
            f"{t.tier}:{t.outcome}" + (f"×{t.attempts}" if t.attempts > 1 else "")
            for t in r.tiers
        )
        style = "red" if r.served_by.startswith("failed") else (
            "yellow" if r.served_by in ("human", "rules") else "green")
        table.add_row(r.name, f"[{style}]{r.served_by}[/{style}]", tried,
                      f"{r.latency_ms:.0f}", f"{r.cost_usd:.6f}", r.note)
    return table


def gateway_demo(
    show_logs: Annotated[bool, typer.Option("--logs", help="print the JSON log lines")] = False,
) -> None:
    """Show the model gateway's fallbacks against local sandbox model servers."""
    configure_logging(level="INFO" if show_logs else "ERROR", json=True)
    metrics = Metrics()
    with ModelSandbox() as sandbox, console.status("running scenarios…"):
        results = asyncio.run(run_demo(sandbox, metrics))
    console.print(_table(results))
    text = metrics.render().decode()
    keep = [line for line in text.splitlines()
            if line.startswith(("sleuth_gateway_outcomes_total", "sleuth_breaker_state",
                                "sleuth_model_cost_usd_total", "sleuth_model_tokens_total"))]
    console.print("[bold]Metrics (Prometheus text, excerpt)[/bold]")
    console.print("\n".join(keep), highlight=False)


def _expected_mark(case_dir: Path, line: dict[str, Any]) -> str:
    expected = load_case(case_dir).case.expected
    if expected is None:
        return "-"
    ok = line["root_cause"] == expected.root_cause.value
    return "[green]✓[/green]" if ok else f"[red]✗ expected {expected.root_cause.value}[/red]"


def demo(
    cases: Annotated[Path, typer.Option(help="a folder of cases (or one case)")] = DEMO_CASES,
    detail: Annotated[str, typer.Option(help="case id to print in full")] = "pub-06-card-declined",
    match: Annotated[str, typer.Option(help="only cases whose id matches this glob")] = "pub-*",
) -> None:
    """Investigate the demo cases end to end on embedded defaults (sandbox world, rule tier)."""
    configure_logging(level="ERROR")
    settings = load_settings()
    folders = [f for f in discover(cases) if fnmatch.fnmatch(f.name, match)]
    if not folders:
        console.print(f"[red]no cases under {cases}[/red]")
        raise typer.Exit(2)
    table = Table(title=f"Investigations of {len(folders)} demo cases (no model reachable: "
                        "the playbooks' rule tier diagnoses)")
    for column in ("case", "ticket", "diagnosis", "conf.", "tier", "cited evidence",
                   "actions", "ms", "expected"):
        table.add_column(column, overflow="fold")
    shown: dict[str, Any] | None = None
    correct = 0
    pending = 0
    with console.status("investigating…") as status:
        for folder in folders:
            status.update(f"investigating {folder.name}…")
            record, case_id, wall = asyncio.run(run_case(folder, settings, Progress(True)))
            line = replay_line(case_id, record, wall_ms=wall)
            pending += sum(a["status"] == "pending_approval" for a in record["actions"])
            mark = _expected_mark(folder, line)
            correct += mark.startswith("[green]")
            table.add_row(
                case_id, record["ticket_id"], f"{line['root_cause']} ({line['severity']})",
                f"{line['confidence']:.2f}", line["tier"],
                "\n".join(f"{c['source']}:{c['ref']}" for c in line["cited"]),
                "\n".join(f"{a['type']}: {a['status']}" for a in line["actions"]),
                str(line["wall_ms"]), mark,
            )
            if case_id == detail:
                shown = record
    if shown is not None:
        console.rule(f"One investigation in full: {detail}")
        render(shown)
    console.print(table)
    console.print(f"[bold]{correct} of {len(folders)} diagnosed as expected.[/bold] "
                  "Try: sleuth investigate --case evals/cases/pub-10-bad-release")
    console.print(f"{pending} proposed action(s) wait for a person (internal notes ran "
                  "alone): see them with `sleuth approvals list`; the audit log: "
                  "`sleuth audit verify`.")
