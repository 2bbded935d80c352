"""`sleuth demo`: the service on embedded defaults, fed the demo tickets by signed webhooks.

The demo starts `sleuth serve` in this process (sandbox worlds of the demo cases, random
webhook secrets, a demo API token written to `data_dir`), posts each demo ticket the way
its ticket system would, posts one again to show the duplicate is recognised, follows the
investigations over the API's event stream and prints what they found. Everything stays
in `data_dir` (default `var/`): the approvals it leaves are there to try afterwards.
"""

from __future__ import annotations

import asyncio
import fnmatch
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.live import Live
from rich.table import Table

from agent.runner import replay_line
from core.errors import SleuthError
from core.settings import Settings, load_settings
from core.telemetry import Metrics, configure_logging
from sandbox.cases import LoadedCase, discover, load_case
from sandbox.models import ModelSandbox
from service.commands.investigate_cmd import render
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


# -- the demo: the service, fed by signed webhooks ----------------------------------------

DEMO_TOKENS = "demo-tokens.yaml"
_STATUS_COLOUR = {"completed": "green", "waiting_approval": "yellow", "failed": "red"}


@dataclass
class Tracked:
    """One demo ticket on its way through the service."""

    case: LoadedCase
    via: str
    investigation_id: str = ""
    status: str = "posting"
    step: str = ""
    found: dict[str, Any] = field(default_factory=dict)


def demo_settings(base: Settings, cases: Path, token: str) -> Settings:
    """Return the demo's settings: the service on a free port, sandbox worlds, new secrets."""
    from service.api.auth import write_tokens_file

    tokens = write_tokens_file(base.data_dir / DEMO_TOKENS,
                               [{"name": "demo", "role": "reader", "token": token}])
    fresh = {f"{source}_secret": SecretStr(secrets.token_urlsafe(32))
             for source in ("zendesk", "intercom", "generic")}
    service = base.service.model_copy(update={
        "host": "127.0.0.1", "port": 0, "embedded_workers": True,
        "sandbox_cases": cases.resolve(), "tokens_file": tokens, **fresh})
    return base.model_copy(update={"service": service})


def _step_text(event: dict[str, Any]) -> str:
    if event.get("step") == "gather":
        return f"gather {event.get('source')}.{event.get('operation')} {event.get('outcome')}"
    return f"{event.get('step', '')} {event.get('detail', '')}"[:70]


def _live_table(tracked: list[Tracked]) -> Table:
    done = sum(t.status in _STATUS_COLOUR for t in tracked)
    table = Table(title="Following the investigations (the API's event stream)",
                  caption=f"{done} of {len(tracked)} stopped")
    for column in ("case", "via", "investigation", "status", "last step"):
        table.add_column(column, overflow="ellipsis", no_wrap=True)
    for t in tracked:
        colour = _STATUS_COLOUR.get(t.status, "cyan")
        table.add_row(t.case.id, t.via, t.investigation_id, f"[{colour}]{t.status}[/{colour}]",
                      t.step)
    return table


async def _drive(url: str, token: str, settings: Settings, cases: list[LoadedCase],
                 again_id: str) -> list[Tracked]:
    """Post every demo ticket, one of them twice, and follow them all to a stop."""
    from service.demo_client import ServiceClient, WebhookSecrets, signed_delivery, webhook_source

    keys = WebhookSecrets.of(settings)
    run = uuid.uuid4().hex[:8]  # new event ids: a second demo run makes new investigations
    tracked = [Tracked(c, webhook_source(c.case.ticket)) for c in cases]
    async with ServiceClient(url, token=token) as client:
        console.print(f"[bold]Signed webhooks[/bold], as each ticket system signs them "
                      f"(event ids demo-{run}-<case>):")
        for t in tracked:
            sent = signed_delivery(t.case.case.ticket, keys, event_id=f"demo-{run}-{t.case.id}")
            got = await client.deliver(sent)
            t.investigation_id, t.status = got.investigation_id, got.status
            console.print(f"  POST {sent.path:<22} ticket {t.case.case.ticket.id:<12} → 202 "
                          f"{got.status} {got.investigation_id} ({got.ms:.0f} ms)")
        first = next((t for t in tracked if t.case.id == again_id), tracked[0])
        resent = signed_delivery(first.case.case.ticket, keys,
                                 event_id=f"demo-{run}-{first.case.id}")
        dup = await client.deliver(resent)
        same = dup.duplicate and dup.investigation_id == first.investigation_id
        verdict = ("[green]recognised: duplicate, the same investigation[/green]" if same
                   else "[red]NOT recognised as a duplicate[/red]")
        console.print(f"  POST {resent.path:<22} ticket {first.case.case.ticket.id:<12} → 202 "
                      f"again (a ticket system's retry of the same event): {verdict} "
                      f"{dup.investigation_id}")

        async def follow(t: Tracked) -> None:
            def seen(event: dict[str, Any]) -> None:
                t.status = "running" if t.status == "queued" else t.status
                t.step = _step_text(event)

            t.found = await client.follow(t.investigation_id, on_event=seen)
            t.status = t.found["status"]

        with Live(get_renderable=lambda: _live_table(tracked), console=console,
                  refresh_per_second=4, transient=True):
            await asyncio.gather(*(follow(t) for t in tracked))
    return tracked


def _results(tracked: list[Tracked]) -> tuple[Table, int, int]:
    table = Table(title=f"Investigations of {len(tracked)} demo cases, through the service "
                        "(no model reachable: the playbooks' rule tier diagnoses)")
    for column in ("case", "ticket", "diagnosis", "conf.", "tier", "cited evidence",
                   "actions", "ms", "expected"):
        table.add_column(column, overflow="fold")
    correct = pending = 0
    for t in tracked:
        record = t.found.get("record")
        ticket_id = t.case.case.ticket.id
        if record is None:
            table.add_row(t.case.id, ticket_id, f"[red]{t.status}: {t.found.get('error')}[/red]",
                          "", "", "", "", "", "[red]✗[/red]")
            continue
        line = replay_line(t.case.id, record, wall_ms=float(t.found.get("wall_ms") or 0))
        pending += sum(a["status"] == "pending_approval" for a in record["actions"])
        expected = t.case.case.expected
        mark = "-"
        if expected is not None:
            ok = line["root_cause"] == expected.root_cause.value
            correct += ok
            want = expected.root_cause.value
            mark = "[green]✓[/green]" if ok else f"[red]✗ expected {want}[/red]"
        table.add_row(
            t.case.id, ticket_id, f"{line['root_cause']} ({line['severity']})",
            f"{line['confidence']:.2f}", line["tier"],
            "\n".join(f"{c['source']}:{c['ref']}" for c in line["cited"]),
            "\n".join(f"{a['type']}: {a['status']}" for a in line["actions"]),
            f"{line['wall_ms']:.0f}", mark)
    return table, correct, pending


def _shown(path: Path) -> str:
    """Return `path` relative to the working folder when it is inside it (shorter to copy)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _next_steps(settings: Settings, cases: Path, token: str, pending: int) -> None:
    tokens = _shown(settings.data_dir / DEMO_TOKENS)
    console.print(f"{pending} proposed action(s) wait for a person (internal notes ran alone); "
                  f"everything is kept in {_shown(settings.data_dir)}/. Try next:")
    for command, why in (
        ("sleuth approvals list", "what waits for a person"),
        ("SLEUTH_REVIEWER_PASSWORD=demo-ava sleuth approvals approve <id> --as ava",
         "decide one (demo reviewers: governance/reviewers.demo.yaml); queues its resume"),
        (f"SLEUTH_SERVICE__TOKENS_FILE={tokens} sleuth serve --sandbox-cases {_shown(cases)}",
         "the service on :8000: its workers resume what was decided"),
        ("sleuth console", "the reviewer console on :8501: sign in as ava / demo-ava"),
        (f"curl -H 'Authorization: Bearer {token}' "
         "'http://127.0.0.1:8000/v1/investigations?status=waiting_approval'",
         "the API (while serving), with this run's demo token (reader)"),
        ("sleuth audit verify", "the hash-chained audit log is intact"),
    ):
        console.print(f"  [cyan]{command}[/cyan]  [dim]# {why}[/dim]", soft_wrap=True,
                      highlight=False)


def demo(
    cases: Annotated[Path, typer.Option(help="a folder of cases (or one case)")] = DEMO_CASES,
    detail: Annotated[str, typer.Option(help="case id to print in full")] = "pub-06-card-declined",
    match: Annotated[str, typer.Option(help="only cases whose id matches this glob")] = "pub-*",
) -> None:
    """Run the service in-process and investigate the demo cases it receives by webhook."""
    from service.api.auth import generate_token
    from service.server import Server

    configure_logging(level="ERROR")
    try:
        base = load_settings()
    except SleuthError as exc:
        console.print(f"[red]{exc.code}: {exc.message}[/red]")
        raise typer.Exit(2) from None
    loaded = [load_case(f) for f in discover(cases) if fnmatch.fnmatch(f.name, match)]
    if not loaded:
        console.print(f"[red]no cases matching {match!r} under {cases}[/red]")
        raise typer.Exit(2)
    token = generate_token()
    settings = demo_settings(base, cases, token)
    server = Server(settings)
    with console.status("starting the service…"):
        url = server.start()
    console.print(f"[bold]sleuth serve[/bold] is running in this process at {url} "
                  f"({server.describe()}); data in {settings.data_dir}/")
    try:
        tracked = asyncio.run(_drive(url, token, settings, loaded, detail))
    except SleuthError as exc:
        console.print(f"[red]{exc.code}: {exc.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        with console.status("stopping the service…"):
            server.stop()
    table, correct, pending = _results(tracked)
    shown = next((t.found.get("record") for t in tracked if t.case.id == detail), None)
    if shown is not None:
        console.rule(f"One investigation in full: {detail}")
        render(shown)
    console.print(table)
    console.print(f"[bold]{correct} of {len(tracked)} diagnosed as expected.[/bold]")
    _next_steps(settings, cases, token, pending)
