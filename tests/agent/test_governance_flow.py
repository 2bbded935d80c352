"""Governance in the graph: taxonomy decisions, approval pauses, resumes, idempotent effects."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.factory import build_governance, investigator
from core.settings import Settings
from core.telemetry import Metrics
from governance.reviewers import Reviewers
from sandbox.world import SandboxWorld

REVIEWERS = Reviewers.demo()


def statuses(record: dict[str, Any]) -> dict[str, str]:
    return {a["type"]: a["status"] for a in record["actions"]}


async def run(world: SandboxWorld, settings: Settings, checkpoints: str,
              investigation_id: str | None = None) -> dict[str, Any]:
    async with investigator(
        settings, world.connector_settings(), metrics=Metrics(), checkpoints=checkpoints,
        effectors=lambda engine: world.effector_set(engine, settings.resilience),
    ) as inv:
        if investigation_id is None:
            return await inv.investigate(world.case.case.ticket)
        return await inv.investigate_or_resume(investigation_id)


async def test_reply_waits_for_a_person_and_runs_once_after_approval(
    settings: Settings, tmp_path: Path, world_of: Callable[[str], SandboxWorld]
) -> None:
    world = world_of("pub-06-card-declined")
    checkpoints = str(tmp_path / "checkpoints.sqlite")
    record = await run(world, settings, checkpoints)
    assert statuses(record) == {"send_customer_reply": "pending_approval",
                                "add_internal_note": "executed"}
    comments = world.effects.zendesk.comments["43492"]
    assert [c["public"] for c in comments] == [False]  # the internal note only

    governance = build_governance(settings)
    reply = next(a for a in record["actions"] if a["type"] == "send_customer_reply")
    request = governance.approvals.get(reply["approval_id"])
    assert request.status == "pending"
    assert request.approver_roles and "support_agent" in request.approver_roles
    governance.approvals.decide(request.id, REVIEWERS.authenticate("ava", "demo-ava"),
                                "approve", edited_text="Hi Marcus, please pay invoice 0008.")

    # a fresh investigator (another process, same checkpoints) resumes the graph
    resumed = await run(world, settings, checkpoints, record["investigation_id"])
    assert statuses(resumed) == {"send_customer_reply": "executed",
                                 "add_internal_note": "executed"}
    comments = world.effects.zendesk.comments["43492"]
    assert [c["public"] for c in comments] == [False, True]
    assert comments[1]["body"] == "Hi Marcus, please pay invoice 0008."
    # resuming a finished investigation acts no more
    again = await run(world, settings, checkpoints, record["investigation_id"])
    assert statuses(again) == statuses(resumed)
    assert len(world.effects.zendesk.comments["43492"]) == 2

    report = governance.audit.verify() if governance.audit else None
    assert report is not None and report.ok
    kinds = {e.kind for e in governance.audit.entries(  # type: ignore[union-attr]
        investigation_id=record["investigation_id"])}
    assert {"ticket_received", "playbooks", "connector_call", "model_call",
            "policy_decision", "action_executed"} <= kinds


async def test_refund_needs_two_billing_admins_and_a_reason(
    settings: Settings, tmp_path: Path, world_of: Callable[[str], SandboxWorld]
) -> None:
    world = world_of("pub-01-double-charge")
    checkpoints = str(tmp_path / "checkpoints.sqlite")
    record = await run(world, settings, checkpoints)
    assert statuses(record)["issue_refund"] == "pending_approval"
    governance = build_governance(settings)
    refund = next(a for a in record["actions"] if a["type"] == "issue_refund")
    request = governance.approvals.get(refund["approval_id"])
    assert request.approvals_required == 2 and request.reason_required
    bill = REVIEWERS.authenticate("bill", "demo-bill")
    governance.approvals.decide(request.id, bill, "approve", reason="charged twice")
    halfway = await run(world, settings, checkpoints, record["investigation_id"])
    assert statuses(halfway)["issue_refund"] == "pending_approval"
    assert world.effects.stripe.refunds == []
    bea = REVIEWERS.authenticate("bea", "demo-bea")
    governance.approvals.decide(request.id, bea, "approve", reason="confirmed duplicate")
    done = await run(world, settings, checkpoints, record["investigation_id"])
    assert statuses(done)["issue_refund"] == "executed"
    assert len(world.effects.stripe.refunds) == 1
    assert world.effects.stripe.refunds[0]["charge"] in {
        "ch_1eR0fCSqHb7WnX3cqsCH1CGS", "ch_1QTBvdfdHb7WnX3cCoscJFYQ"}


async def test_a_rejected_reply_is_never_sent(
    settings: Settings, tmp_path: Path, world_of: Callable[[str], SandboxWorld]
) -> None:
    world = world_of("pub-06-card-declined")
    checkpoints = str(tmp_path / "checkpoints.sqlite")
    record = await run(world, settings, checkpoints)
    governance = build_governance(settings)
    reply = next(a for a in record["actions"] if a["type"] == "send_customer_reply")
    governance.approvals.decide(reply["approval_id"], REVIEWERS.authenticate("lee", "demo-lee"),
                                "reject", reason="tone is off")
    done = await run(world, settings, checkpoints, record["investigation_id"])
    assert statuses(done)["send_customer_reply"] == "rejected"
    assert all(not c["public"] for c in world.effects.zendesk.comments["43492"])
