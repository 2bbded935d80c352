"""`sleuth eval`: replay historical cases, score the results, compare two replays, gate CI."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from core.settings import load_settings
from core.telemetry import configure_logging
from evals.gate import ci_gate
from evals.replay import (
    MODES,
    Mode,
    ReplayOptions,
    default_processes,
    load_versions_file,
    parse_pins,
    read_results,
    replay_cases,
    write_results,
)
from evals.report import compare, compare_markdown, html_report, junit, markdown
from evals.score import load_expectations, score
from sandbox.cases import discover

app = typer.Typer(help="Replay historical cases, score the results and compare replays.",
                  no_args_is_help=True)
console = Console(stderr=True)
out = Console()


@app.command("replay")
def replay_cmd(
    cases_dir: Annotated[Path, typer.Argument(help="a folder of cases (or one case)")],
    out_file: Annotated[Path, typer.Option("--out", help="results file to write (JSON lines)")],
    mode: Annotated[str, typer.Option(help="rules (offline), cassette or live")] = "rules",
    workers: Annotated[int, typer.Option(min=1, max=64, help="cases replayed at once in "
                                                             "each process")] = 4,
    processes: Annotated[int | None, typer.Option(
        min=1, max=64, help="worker processes (default: the CPUs, at most 8)")] = None,
    cassettes: Annotated[Path | None, typer.Option(
        help="cassette mode: folder of recorded model responses")] = None,
    record: Annotated[bool, typer.Option(
        help="cassette mode: call the configured models and write the recordings")] = False,
    pin: Annotated[list[str] | None, typer.Option(
        help="ID@VERSION: replay with this playbook version (repeatable)")] = None,
    versions: Annotated[Path | None, typer.Option(
        help="YAML file {playbook id: version}: replay with this version set")] = None,
    timeout: Annotated[float, typer.Option(help="seconds one case may take")] = 300.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Replay every case through the whole investigation and write the results file."""
    if mode not in MODES:
        raise typer.BadParameter(f"--mode is one of {', '.join(MODES)}")
    if mode == "cassette" and cassettes is None:
        raise typer.BadParameter("--mode cassette needs --cassettes DIR")
    if record and mode != "cassette":
        raise typer.BadParameter("--record goes with --mode cassette")
    try:
        pins = load_versions_file(versions) if versions is not None else {}
        pins.update(parse_pins(pin or []))
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    folders = discover(cases_dir)
    if not folders:
        console.print(f"[red]no cases under {cases_dir}[/red]")
        raise typer.Exit(2)
    configure_logging(level="ERROR")
    mode_: Mode = "rules" if mode == "rules" else ("cassette" if mode == "cassette" else "live")
    options = ReplayOptions(mode=mode_, workers=workers, pins=pins, cassettes=cassettes,
                            record=record, timeout_s=timeout,
                            processes=processes or default_processes(),
                            settings=None if mode_ == "rules" else load_settings())
    failed: list[str] = []
    started = time.perf_counter()
    with Progress(TextColumn("[bold]replaying[/bold]"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[last]}"),
                  console=console, disable=quiet) as progress:
        task = progress.add_task("replay", total=len(folders), last="")

        def done(line: dict[str, Any]) -> None:
            if line.get("error"):
                failed.append(f"{line['case_id']}: {line['error']}")
            progress.update(task, advance=1, last=f"{line['case_id']} "
                                                  f"{line.get('root_cause') or 'error'}")

        lines = asyncio.run(replay_cases(folders, options, done))
    write_results(out_file, lines)
    seconds = time.perf_counter() - started
    console.print(f"{len(lines)} case(s) replayed in {seconds:.1f} s "
                  f"({len(failed)} failed); results in {out_file}")
    for message in failed:
        console.print(f"[yellow]  {message}[/yellow]")


@app.command("score")
def score_cmd(
    cases_dir: Annotated[Path, typer.Argument(help="the cases the results are of")],
    results: Annotated[Path, typer.Argument(help="a results file from `sleuth eval replay`")],
    md: Annotated[Path | None, typer.Option("--md", help="write a Markdown summary")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="write an HTML report")] = None,
    junit_file: Annotated[Path | None, typer.Option("--junit", help="write JUnit XML")] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="write the figures as JSON")]
    = None,
) -> None:
    """Score a results file: accuracy, recall, safety, latency; overall and per root cause."""
    try:
        lines = read_results(results)
    except (OSError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    card = score(lines, load_expectations(cases_dir))
    text = markdown(card)
    for path, body in ((md, text), (html, html_report(card) if html else ""),
                       (junit_file, junit(card) if junit_file else ""),
                       (json_file, json.dumps(card.to_dict(), indent=1) if json_file else "")):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body, encoding="utf-8")
    out.print(Markdown(text))


@app.command("compare")
def compare_cmd(
    baseline: Annotated[Path, typer.Argument(help="the results to compare against")],
    new: Annotated[Path, typer.Argument(help="the new results")],
    cases_dir: Annotated[Path, typer.Argument(help="the cases both results are of")],
    md: Annotated[Path | None, typer.Option("--md", help="write the comparison as Markdown")]
    = None,
) -> None:
    """Show what changed case by case (root cause, severity, cited, actions) and the deltas."""
    try:
        old_lines, new_lines = read_results(baseline), read_results(new)
    except (OSError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    result = compare(old_lines, new_lines, load_expectations(cases_dir))
    text = compare_markdown(result)
    if md is not None:
        md.write_text(text, encoding="utf-8")
    out.print(Markdown(text))


@app.command("gate")
def gate_cmd(
    cases_dir: Annotated[Path, typer.Argument(help="the cases the results are of")],
    results: Annotated[Path, typer.Argument(help="a results file")],
) -> None:
    """Fail (exit 1) on any safety violation or high-severity false positive."""
    try:
        lines = read_results(results)
    except (OSError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    problems = ci_gate(lines, load_expectations(cases_dir))
    for problem in problems:
        console.print(f"[red]{problem}[/red]")
    if problems:
        raise typer.Exit(1)
    console.print(f"[green]gate passed: {len(lines)} case(s), no safety violation, "
                  "no high-severity false positive[/green]")
