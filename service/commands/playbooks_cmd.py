"""`sleuth playbooks`: lint, list, show, diff, activate and roll back playbook versions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from core.errors import SleuthError
from core.telemetry import configure_logging
from playbooks.schema import version_tuple
from playbooks.store import DEFAULT_ROOT, PlaybookStore

DEFAULT_CASES = Path(__file__).resolve().parents[2] / "evals" / "cases"

app = typer.Typer(help="Versioned YAML playbooks: lint, list, show, diff, activate, roll back.",
                  no_args_is_help=True)
console = Console()
RootOption = Annotated[Path, typer.Option("--root", help="the playbooks folder")]


def _store(root: Path) -> PlaybookStore:
    return PlaybookStore(root)


def _split(ref: str) -> tuple[str, str | None]:
    pid, _, version = ref.partition("@")
    return pid, version or None


@app.command("lint")
def lint(root: RootOption = DEFAULT_ROOT) -> None:
    """Validate every playbook file; exit 1 naming file, line and field of each problem."""
    loaded = _store(root).load()
    count = sum(len(v) for v in loaded.versions.values())
    for error in loaded.errors:
        console.print(f"[red]✗ {error.message}[/red]")
    active = _store(root).active_versions()
    missing = [f"{pid}@{v}" for pid, v in active.items()
               if v not in loaded.versions.get(pid, {})]
    for ref in missing:
        console.print(f"[red]✗ active.yaml names {ref}, which does not load[/red]")
    if loaded.errors or missing:
        raise typer.Exit(1)
    console.print(f"[green]✓ {count} playbook version(s) valid[/green]")


@app.command("list")
def list_playbooks(root: RootOption = DEFAULT_ROOT) -> None:
    """List playbooks with their versions, the active one marked."""
    store = _store(root)
    loaded = store.load()
    active = {p.id: p.version for p in store.active()}
    table = Table(title="Playbooks")
    for column in ("id", "active", "versions", "owner", "root causes", "applies to"):
        table.add_column(column, overflow="fold")
    for pid, versions in sorted(loaded.versions.items()):
        current = versions.get(active.get(pid, ""))
        shown = current or versions[max(versions, key=version_tuple)]
        table.add_row(
            pid, active.get(pid, "-"),
            ", ".join(sorted(versions, key=version_tuple)), shown.owner,
            ", ".join(sorted({h.root_cause.value for h in shown.hypotheses})),
            ", ".join(shown.applies_to.categories),
        )
    console.print(table)
    for error in loaded.errors:
        console.print(f"[red]✗ {error.message}[/red]")


@app.command("show")
def show(ref: Annotated[str, typer.Argument(help="ID or ID@VERSION")],
         root: RootOption = DEFAULT_ROOT) -> None:
    """Print one playbook version (the active one when no version is given)."""
    pid, version = _split(ref)
    store = _store(root)
    try:
        playbook = store.get(pid, version)
    except SleuthError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None
    text = store.path(playbook.id, playbook.version).read_text(encoding="utf-8")
    console.print(Syntax(text, "yaml", line_numbers=True))


@app.command("diff")
def diff(a: Annotated[str, typer.Argument(help="ID@VERSION")],
         b: Annotated[str, typer.Argument(help="ID@VERSION")],
         root: RootOption = DEFAULT_ROOT) -> None:
    """Show what changed between two playbook versions."""
    (pa, va), (pb, vb) = _split(a), _split(b)
    if va is None or vb is None:
        raise typer.BadParameter("give both versions: ID@A ID@B")
    try:
        text = _store(root).diff(pa, va, pb, vb)
    except SleuthError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None
    console.print(Syntax(text or "(no difference)\n", "diff"))


@app.command("activate")
def activate(ref: Annotated[str, typer.Argument(help="ID@VERSION")],
             root: RootOption = DEFAULT_ROOT) -> None:
    """Make a version active without the replay gate (use `promote` for gated changes)."""
    pid, version = _split(ref)
    if version is None:
        raise typer.BadParameter("give ID@VERSION")
    try:
        _store(root).set_active(pid, version)
    except SleuthError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None
    console.print(f"[green]{pid} is now at {version}[/green]")


@app.command("rollback")
def rollback(pid: Annotated[str, typer.Argument(help="playbook id")],
             root: RootOption = DEFAULT_ROOT) -> None:
    """Make the previous version of a playbook active again."""
    try:
        before, after = _store(root).rollback(pid)
    except SleuthError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None
    console.print(f"[green]{pid} rolled back from {before} to {after}[/green]")


@app.command("promote")
def promote_cmd(
    ref: Annotated[str, typer.Argument(help="ID@VERSION to make active, if it does no worse")],
    cases: Annotated[Path, typer.Option(help="the cases to replay")] = DEFAULT_CASES,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="compare only")] = False,
    root: RootOption = DEFAULT_ROOT,
) -> None:
    """Replay the cases with the current and the new version; promote only if none is worse."""
    from evals.gate import promote
    from evals.replay import default_processes

    pid, version = _split(ref)
    if version is None:
        raise typer.BadParameter("give ID@VERSION")
    configure_logging(level="ERROR")
    try:
        result = promote(_store(root), pid, version, cases, processes=default_processes(),
                         apply=not dry_run)
    except SleuthError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None
    for key, (old, new) in result.figures().items():
        console.print(f"{key}: {old} → {new}")
    if not result.accepted:
        for reason in result.reasons:
            console.print(f"[red]refused: {reason}[/red]")
        raise typer.Exit(1)
    verb = "would become" if dry_run else "is now"
    console.print(f"[green]{pid}@{version} {verb} active (was {result.previous})[/green]")


@app.command("versions")
def versions(root: RootOption = DEFAULT_ROOT) -> None:
    """Print the active version set as YAML (to pin a replay to it later)."""
    active = {p.id: p.version for p in _store(root).active()}
    print(yaml.safe_dump(active, sort_keys=True), end="")
