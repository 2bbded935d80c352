"""`sleuth demo`: what sleuth can do so far, on embedded defaults."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from core.telemetry import Metrics, configure_logging
from sandbox.models import ModelSandbox
from service.demo import ScenarioResult, run_demo


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


def demo(
    show_logs: bool = typer.Option(False, "--logs", help="print the JSON log lines as well"),
) -> None:
    """Run the model gateway demo against local sandbox model servers."""
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
