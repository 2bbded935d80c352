"""Data to try the console on: real investigations paused for approvals, and more approvals.

Used by the console's tests, its render benchmark and its screenshots. Investigations are
real: each ticket of an evals case is accepted through the service context and its job is
run against the case's loopback sandbox world, so the approvals, evidence, events and audit
entries are what a worker produces. Extra approval requests go through
`ApprovalService.request`, the API the graph itself uses.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from itertools import cycle
from pathlib import Path
from typing import Any

from core.settings import Settings
from governance.approvals import ApprovalService
from governance.approvals_store import ApprovalRequest
from governance.policy import decide
from sandbox.cases import load_case
from service.context import build_context
from service.jobs import InvestigationJobs
from service.queue.base import Job
from service.worlds import SandboxWorlds

CASES = Path(__file__).resolve().parents[1] / "evals" / "cases"
# a refund and a reply (two-approver refund: no amount), a reply, an escalation and a reply
DEMO_CASES = ("pub-01-double-charge", "pub-06-card-declined", "pub-10-bad-release")


async def seed_investigations(settings: Settings, cases: Sequence[str] = DEMO_CASES, *,
                              cases_dir: Path = CASES) -> dict[str, str]:
    """Investigate each case's ticket as a worker would; return {case: investigation id}."""
    ctx = build_context(settings)
    await ctx.queue.setup()
    worlds = SandboxWorlds(settings, cases_dir, ctx.metrics)
    jobs = InvestigationJobs(ctx.store, worlds, worker="seed")
    found: dict[str, str] = {}
    try:
        for name in cases:
            ticket = load_case(cases_dir / name).case.ticket
            row, _ = await ctx.accept(ticket.source, f"seed-{name}", ticket)
            await jobs.handle(Job("investigate", row.id))
            found[name] = row.id
    finally:
        await worlds.aclose()
        await ctx.aclose()
    return found


def _actions() -> Iterator[dict[str, Any]]:
    """Proposed actions of every level that needs a person, amounts varied."""
    for n in cycle(range(1, 11)):
        yield {"type": "send_customer_reply", "reason": "answer the customer", "params": {}}
        yield {"type": "issue_refund", "reason": "refund a duplicate charge",
               "params": {"charge_id": f"ch_bench{n:04d}", "amount": 2500 * n,
                          "currency": "usd"}}
        yield {"type": "create_bug_report", "reason": "file the regression", "params": {}}
        yield {"type": "apply_credit", "reason": "credit the outage",
               "params": {"amount": 900 * n, "currency": "eur"}}
        yield {"type": "escalate_to_oncall", "reason": "page the gateway team", "params": {}}


def add_approvals(service: ApprovalService, investigation_ids: Sequence[str], count: int, *,
                  first_index: int = 100, clock: datetime | None = None) -> list[ApprovalRequest]:
    """Request `count` more approvals spread over the investigations (indices from
    `first_index`); with `clock`, they are requested as of that time."""
    if clock is not None:
        service = ApprovalService(service.engine, service.taxonomy, clock=lambda: clock,
                                  expiry=service.expiry)
    made: list[ApprovalRequest] = []
    actions = _actions()
    for n in range(count):
        action = next(actions)
        text = "Hello,\n\nWe looked into it and here is what happened.\n" \
            if action["type"] == "send_customer_reply" else None
        made.append(service.request(investigation_ids[n % len(investigation_ids)],
                                    first_index + n, action, decide(action, service.taxonomy),
                                    draft_text=text))
    return made
