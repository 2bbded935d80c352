"""`sleuth approvals`: list, show, approve and reject actions waiting for a person.

The reviewer's password comes from SLEUTH_REVIEWER_PASSWORD or a hidden prompt;
reviewers from --reviewers-file / SLEUTH_GOVERNANCE__REVIEWERS_FILE (the demo reviewers only
outside production). Exit codes: 2 for a refused or invalid request, 3 for a refused
reviewer (wrong password, role not allowed).
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from core.errors import AuthError, ConfigurationError, SleuthError
from core.settings import Profile, Settings, load_settings
from governance.approvals import ApprovalService, Decision
from governance.approvals_store import ApprovalRequest, ApprovalStatus, create_tables
from governance.db import make_engine
from governance.reviewers import Reviewer, load_reviewers
from governance.taxonomy import load_active

app = typer.Typer(help="Actions waiting for a person: list, show, approve, reject.",
                  no_args_is_help=True)
ReviewersFile = Annotated[Path | None, typer.Option(
    "--reviewers-file", envvar="SLEUTH_GOVERNANCE__REVIEWERS_FILE",
    help="YAML file of reviewers (default: the demo reviewers, outside production only)")]
IdArgument = Annotated[int, typer.Argument(help="approval request id")]
AsOption = Annotated[str, typer.Option("--as", help="your reviewer name")]


def _console() -> Console:
    return Console()


def _fail(exc: SleuthError) -> NoReturn:
    _console().print(f"[red]{exc.code}: {exc.message}[/red]")
    raise typer.Exit(3 if isinstance(exc, AuthError) else 2)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as exc:
        _fail(exc)


def _service(settings: Settings) -> ApprovalService:
    engine = make_engine(settings.database_url.get_secret_value())
    create_tables(engine)
    return ApprovalService(engine, load_active(), expiry=timedelta(
        hours=settings.governance.approval_expiry_hours))


def _login(name: str, path: Path | None, settings: Settings) -> Reviewer:
    reviewers = load_reviewers(path or settings.governance.reviewers_file,
                               production=settings.profile is Profile.PRODUCTION)
    password = os.environ.get("SLEUTH_REVIEWER_PASSWORD")
    if password is None:
        password = typer.prompt(f"password for {name}", hide_input=True)
    return reviewers.authenticate(name, password)


def _summary(row: ApprovalRequest, approvals: int) -> str:
    if row.status == ApprovalStatus.PENDING.value:
        return f"pending ({approvals} of {row.approvals_required} approvals)"
    return row.status


@app.command("list")
def list_approvals(
    status: Annotated[ApprovalStatus | None, typer.Option(help="only this status")] = None,
    investigation: Annotated[str | None, typer.Option(help="only this investigation")] = None,
) -> None:
    """List approval requests, oldest first."""
    try:
        service = _service(_settings())
        rows = service.list(status=status.value if status else None,
                            investigation_id=investigation)
    except SleuthError as exc:
        _fail(exc)
    now = service.clock()
    table = Table(title="Approval requests")
    for column in ("id", "investigation", "#", "action", "level", "status", "approvals",
                   "roles", "expires"):
        table.add_column(column, overflow="fold")
    for row in rows:
        approvals = sum(d.decision == "approve" for d in service.decisions(row.id or 0))
        overdue = row.status == ApprovalStatus.PENDING.value and row.expires_at <= now
        table.add_row(
            str(row.id), row.investigation_id, str(row.action_index), row.action_type,
            row.level, row.status + (" (overdue)" if overdue else ""),
            f"{approvals}/{row.approvals_required}", ", ".join(row.approver_roles),
            row.expires_at.isoformat(timespec="minutes"),
        )
    _console().print(table)


@app.command("show")
def show(request_id: IdArgument) -> None:
    """Print one approval request with its parameters, texts and decisions."""
    try:
        service = _service(_settings())
        row = service.get(request_id)
        decisions = service.decisions(request_id)
    except SleuthError as exc:
        _fail(exc)
    console = _console()
    approvals = sum(d.decision == "approve" for d in decisions)
    console.print(f"[bold]approval {row.id}[/bold]: {row.action_type} ({row.level}), "
                  f"{_summary(row, approvals)}")
    console.print(f"investigation {row.investigation_id}, action #{row.action_index}; "
                  f"taxonomy {row.taxonomy_version}: {row.why}")
    console.print(f"approvers: {', '.join(row.approver_roles)}; reason required: "
                  f"{'yes' if row.reason_required else 'no'}; expires "
                  f"{row.expires_at.isoformat(timespec='minutes')}")
    if row.action_reason:
        console.print(f"proposed because: {row.action_reason}")
    console.print("params:", json.dumps(row.params, indent=2, sort_keys=True), markup=False)
    if row.draft_text is not None:
        console.print("--- draft reply ---\n" + row.draft_text, markup=False)
    if row.edited_text is not None:
        console.print("--- edited reply (will be sent) ---\n" + row.edited_text, markup=False)
    for d in decisions:
        console.print(f"{d.decided_at.isoformat(timespec='seconds')} {d.reviewer} ({d.role}) "
                      f"{d.decision}: {d.reason or '-'}", markup=False)


def _decide(request_id: int, name: str, decision: Decision, reason: str | None,
            edited: str | None, reviewers_file: Path | None) -> None:
    try:
        settings = _settings()
        reviewer = _login(name, reviewers_file, settings)  # before touching the database
        service = _service(settings)
        row = service.decide(request_id, reviewer, decision, reason=reason, edited_text=edited)
        approvals = sum(d.decision == "approve" for d in service.decisions(request_id))
    except SleuthError as exc:
        _fail(exc)
    colour = "red" if row.status == ApprovalStatus.REJECTED.value else "green"
    _console().print(f"[{colour}]approval {row.id} ({row.action_type}): "
                     f"{_summary(row, approvals)}[/{colour}]")
    if row.status != ApprovalStatus.PENDING.value:
        _resume_later(settings, row.investigation_id)


def _resume_later(settings: Settings, investigation_id: str) -> None:
    """Queue the investigation's resume job: the next free worker carries it on."""
    from service.context import build_context
    from service.queue.base import Job

    async def enqueue() -> None:
        ctx = build_context(settings)
        try:
            await ctx.queue.setup()
            await ctx.queue.enqueue(Job("resume", investigation_id))
        finally:
            await ctx.aclose()

    try:
        asyncio.run(enqueue())
    except SleuthError as exc:
        _console().print(f"[yellow]decision stored, but the resume job was not queued "
                         f"({exc.code}); run `sleuth investigate --resume "
                         f"{investigation_id}`[/yellow]")
        return
    _console().print(f"investigation {investigation_id} resumes on the next free worker "
                     f"(`sleuth serve` or `sleuth worker`), or now with `sleuth investigate "
                     f"--resume {investigation_id}`")


@app.command("approve")
def approve(
    request_id: IdArgument,
    name: AsOption,
    reason: Annotated[str | None, typer.Option(help="why (required for financial actions)")]
    = None,
    edit_file: Annotated[Path | None, typer.Option(
        "--edit-file", exists=True, dir_okay=False, readable=True,
        help="send this text instead of the drafted reply")] = None,
    reviewers_file: ReviewersFile = None,
) -> None:
    """Approve a request as a reviewer (asks for your password)."""
    edited = edit_file.read_text(encoding="utf-8") if edit_file else None
    _decide(request_id, name, "approve", reason, edited, reviewers_file)


@app.command("reject")
def reject(
    request_id: IdArgument,
    name: AsOption,
    reason: Annotated[str, typer.Option(help="why the action must not happen")],
    reviewers_file: ReviewersFile = None,
) -> None:
    """Reject a request as a reviewer (asks for your password)."""
    _decide(request_id, name, "reject", reason, None, reviewers_file)
