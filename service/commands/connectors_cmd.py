"""`sleuth connectors`: list connectors with their health, run one operation by hand."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from connectors.base import Connector, ToolResult
from connectors.registry import REGISTRY, DisabledConnector, build_connectors
from connectors.settings import ConnectorSettings, load_connector_settings
from core.domain import SourceName
from core.errors import SleuthError
from core.settings import load_settings
from core.telemetry import Metrics, configure_logging
from sandbox.cases import load_case
from sandbox.world import SandboxWorld

app = typer.Typer(help="Read-only connectors: health, operations, and running one by hand.",
                  no_args_is_help=True)
console = Console()
T = TypeVar("T")

CaseOption = Annotated[Path | None, typer.Option(
    "--case", help="a case folder: run against its world in the sandbox instead of the "
                   "configured systems")]

Built = dict[SourceName, Connector | DisabledConnector]


@asynccontextmanager
async def _connectors(case: Path | None) -> AsyncIterator[Built]:
    """Yield connectors built from settings, or against a case's sandbox world."""
    settings = load_settings()
    metrics = Metrics()
    if case is None:
        connector_settings: ConnectorSettings = load_connector_settings()
        built = build_connectors(connector_settings, resilience=settings.resilience,
                                 metrics=metrics)
        try:
            yield built
        finally:
            for connector in built.values():
                await connector.aclose()
        return
    world = await asyncio.to_thread(lambda: SandboxWorld(load_case(case)).start())
    try:
        built = build_connectors(world.connector_settings(), resilience=settings.resilience,
                                 metrics=metrics)
        try:
            yield built
        finally:
            for connector in built.values():
                await connector.aclose()
    finally:
        await asyncio.to_thread(world.stop)


def _run(fn: Callable[[], Awaitable[T]]) -> T:
    configure_logging(level="ERROR")
    try:
        return asyncio.run(fn())  # type: ignore[arg-type]
    except SleuthError as exc:
        console.print(f"[red]{exc.code}: {exc.message}[/red]")
        raise typer.Exit(2) from None


@app.command("list")
def list_connectors(case: CaseOption = None) -> None:
    """List every connector with its health and operations."""

    async def check() -> list[tuple[str, str, str, float, list[str]]]:
        async with _connectors(case) as built:
            healths = await asyncio.gather(*(c.health() for c in built.values()))
            return [(h.source, h.status, h.detail, h.latency_ms,
                     sorted(REGISTRY[h.source].operations())) for h in healths]

    rows = _run(check)
    table = Table(title="Connectors" + (f" (sandbox of {case})" if case else ""))
    for column in ("connector", "health", "ms", "operations", "detail"):
        table.add_column(column, overflow="fold")
    colours = {"ok": "green", "degraded": "yellow", "down": "red", "disabled": "dim"}
    for source, status, detail, latency, ops in rows:
        table.add_row(source, f"[{colours[status]}]{status}[/{colours[status]}]",
                      f"{latency:.0f}", ", ".join(ops), detail)
    console.print(table)


@app.command("ops")
def operations(source: Annotated[str, typer.Argument(help="connector name")]) -> None:
    """Show a connector's operations and their parameters (JSON Schema)."""
    if source not in REGISTRY:
        console.print(f"[red]unknown connector {source!r}; known: {', '.join(REGISTRY)}[/red]")
        raise typer.Exit(2)
    for name, op in sorted(REGISTRY[source].operations().items()):
        console.print(f"[bold]{source}.{name}[/bold]: {op.description}")
        console.print_json(json.dumps(op.params.model_json_schema()))


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {pair!r}")
        try:
            params[key] = json.loads(value)  # numbers, lists, booleans
        except json.JSONDecodeError:
            params[key] = value
    return params


@app.command("run")
def run_operation(
    source: Annotated[str, typer.Argument(help="connector name, e.g. stripe")],
    operation: Annotated[str, typer.Argument(help="operation name, e.g. find_customer")],
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="key=value (value parsed as JSON when it can be)")] = None,
    case: CaseOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the ToolResult as JSON")] = False,
) -> None:
    """Run one read-only operation and print its evidence or typed error."""
    if source not in REGISTRY:
        console.print(f"[red]unknown connector {source!r}; known: {', '.join(REGISTRY)}[/red]")
        raise typer.Exit(2)
    params = _parse_params(param or [])

    async def call() -> ToolResult:
        async with _connectors(case) as built:
            return await built[source].run(operation, params)

    result = _run(call)
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        _print_result(result)
    if result.error is not None:
        raise typer.Exit(1)


def _print_result(result: ToolResult) -> None:
    head = f"{result.source}.{result.operation} in {result.duration_ms:.0f} ms, " \
           f"{result.attempts} attempt(s)"
    if result.error is not None:
        console.print(f"[red]{head}: {result.error.kind} ({result.error.code}): "
                      f"{result.error.message}[/red]")
        return
    console.print(f"[green]{head}: {len(result.evidence)} evidence item(s)[/green]")
    for item in result.evidence:
        console.print(f"• [bold]{item.source}:{item.ref}[/bold] {item.title}")
        console.print(f"  {item.summary}")
        if item.url:
            console.print(f"  [dim]{item.url}[/dim]")
