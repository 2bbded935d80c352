"""Govern, wait and act: every proposed action passes the taxonomy before anything happens.

- govern: the taxonomy decides each action (the model's own claims are ignored):
  run alone, wait for a person (an approval request), or never. A reply that
  names another customer is blocked whatever its level.
- wait: pauses the graph with `interrupt()` while approvals are pending; a
  decision resumes it on any process. Side effects come after it, never before.
- act: executes approved actions through the effectors, idempotently (a key
  per investigation and action), so retries and resumes never act twice.
"""

from __future__ import annotations

import re
import time
from typing import Any, Literal

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from agent.context import AgentContext
from agent.state import InvestigationState
from core.domain import ActionStatus, ActionType
from governance.effectors.base import EffectorAction
from governance.policy import decide

_IDENTIFIERS = re.compile(
    r"\bws_[a-z0-9_]+\b|\b(?:cus|ch|in|sub|re|pi|pm)_[A-Za-z0-9]{6,}\b|"
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
)


def foreign_identifiers(text: str, state: InvestigationState) -> list[str]:
    """Return identifiers in `text` that do not belong to this ticket's customer."""
    customer = state.get("customer") or {}
    email = str(state["ticket"]["requester"]["email"]).lower()
    domain = email.rsplit("@", 1)[-1]
    own = {email, str(customer.get("workspace_id") or "").lower(),
           str(customer.get("id") or "").lower()}
    # Stripe objects seen in this investigation belong to this customer: the
    # connector only lists objects of the customer it was asked about
    for call in state.get("calls", []):
        result = call["result"]
        if result.get("source") == "stripe":
            own.update(str(e["ref"]).lower() for e in result.get("evidence", []))
    foreign = []
    for found in _IDENTIFIERS.findall(text):
        value = found.lower()
        if value in own or (("@" in value) and value.rsplit("@", 1)[-1] == domain):
            continue
        if "@" in value and value.rsplit("@", 1)[-1].endswith("gatewayco.com"):
            continue  # our own support addresses
        foreign.append(found)
    return sorted(set(foreign))


def _audit(ctx: AgentContext, kind: str, state: InvestigationState,
           payload: dict[str, Any]) -> None:
    ctx.audit(kind, state["investigation_id"], payload)


async def govern(state: InvestigationState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Decide each proposed action by the taxonomy; open approval requests where needed."""
    started = time.perf_counter()
    ctx = runtime.context
    gov = ctx.governance
    diagnosis = state.get("diagnosis") or {}
    actions: list[dict[str, Any]] = []
    for index, proposed in enumerate(state.get("actions", [])):
        action = {**proposed, "index": index}
        if gov is None:  # no governance configured: nothing may run
            action.update(status=ActionStatus.PROPOSED.value, why="no governance configured")
            actions.append(action)
            continue
        decision = decide({"type": action["type"], "params": action.get("params", {})},
                          gov.taxonomy)
        action.update(level=decision.level, why=decision.why)
        if action["type"] == ActionType.SEND_CUSTOMER_REPLY.value:
            action["text"] = diagnosis.get("reply_draft", "")
            leaked = foreign_identifiers(action["text"], state)
            if leaked:
                decision = decision.model_copy(update={
                    "outcome": "refuse", "why": "the reply names another customer's data"})
                action.update(why=decision.why, leaked=len(leaked))
        if action["type"] == ActionType.ADD_INTERNAL_NOTE.value:
            action["text"] = diagnosis.get("summary", "")
        if decision.outcome == "refuse":
            action["status"] = ActionStatus.BLOCKED.value
        elif decision.outcome == "execute":
            action["status"] = ActionStatus.APPROVED.value
            action["approved_by"] = "taxonomy"
        else:
            request = gov.approvals.request(
                state["investigation_id"], index,
                {"type": action["type"], "reason": action.get("reason", ""),
                 "params": action.get("params", {})},
                decision, draft_text=action.get("text"))
            action.update(status=ActionStatus.PENDING_APPROVAL.value, approval_id=request.id)
        _audit(ctx, "policy_decision", state, {
            "index": index, "type": action["type"], "outcome": decision.outcome,
            "level": decision.level, "why": decision.why,
            "taxonomy_version": decision.taxonomy_version,
            "approval_id": action.get("approval_id")})
        actions.append(action)
    pending = sum(a["status"] == ActionStatus.PENDING_APPROVAL.value for a in actions)
    get_stream_writer()({"step": "govern", "detail": f"{len(actions)} action(s): "
                                                     f"{pending} waiting for a person"})
    return {"actions": actions, "timings": {"govern": (time.perf_counter() - started) * 1000}}


async def act(state: InvestigationState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Execute every approved action that has not run yet, each at most once."""
    started = time.perf_counter()
    ctx = runtime.context
    gov = ctx.governance
    actions = [dict(a) for a in state.get("actions", [])]
    for action in actions:
        if action.get("status") != ActionStatus.APPROVED.value:
            continue
        if gov is None or gov.effectors is None:
            action["why"] = "approved; no effector is configured to carry it out"
            continue
        text = action.get("edited_text") or action.get("text", "")
        if action["type"] == ActionType.SEND_CUSTOMER_REPLY.value and gov.redactor is not None:
            # the customer gets their own details back, and nobody else's
            text = gov.redactor.restore(text, investigation_id=state["investigation_id"],
                                        allowed=True)
            if foreign_identifiers(text, state):
                action.update(status=ActionStatus.BLOCKED.value,
                              why="the reply names another customer's data")
                continue
        result = await gov.effectors.execute(EffectorAction(
            investigation_id=state["investigation_id"], index=action["index"],
            type=ActionType(action["type"]), params=action.get("params", {}),
            ticket_id=state["ticket"]["id"], text=text))
        action["result"] = result.model_dump(mode="json")
        if result.status in ("executed", "duplicate"):
            action["status"] = ActionStatus.EXECUTED.value
        else:
            action["why"] = f"execution failed: {result.error_code}: {result.detail}"
        _audit(ctx, "action_executed", state, {
            "index": action["index"], "type": action["type"], "status": result.status,
            "idempotency_key": result.key, "external_id": result.external_id,
            "error_code": result.error_code})
    return {"actions": actions, "timings": {"act": (time.perf_counter() - started) * 1000}}


def pending_approvals(state: InvestigationState) -> list[int]:
    """Return the approval ids still waiting for a decision."""
    return [a["approval_id"] for a in state.get("actions", [])
            if a.get("status") == ActionStatus.PENDING_APPROVAL.value]


def after_finalize(state: InvestigationState) -> Literal["wait", "__end__"]:
    """Wait for people when approvals are pending, else end."""
    return "wait" if pending_approvals(state) else "__end__"


async def wait(state: InvestigationState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Pause until approvals are decided; then take their outcome from the approvals store."""
    ids = pending_approvals(state)
    interrupt({"investigation_id": state["investigation_id"], "pending_approvals": ids})
    gov = runtime.context.governance
    assert gov is not None  # approvals exist only with governance
    actions = [dict(a) for a in state.get("actions", [])]
    escalated = bool(state.get("escalated"))
    for action in actions:
        if action.get("status") != ActionStatus.PENDING_APPROVAL.value:
            continue
        request = gov.approvals.get(action["approval_id"])
        if request.status != "pending":
            for made in gov.approvals.decisions(action["approval_id"]):
                runtime.context.audit("approval", state["investigation_id"], {
                    "approval_id": action["approval_id"], "index": action["index"],
                    "type": action["type"], "decision": made.decision, "role": made.role,
                    "reason": made.reason, "edited": made.edited_text is not None,
                    "status": request.status}, actor=made.reviewer)
        if request.status == "approved":
            action["status"] = ActionStatus.APPROVED.value
            decisions = gov.approvals.decisions(action["approval_id"])
            action["approved_by"] = [d.reviewer for d in decisions]
            if request.edited_text:
                action["edited_text"] = request.edited_text
        elif request.status == "rejected":
            action["status"] = ActionStatus.REJECTED.value
        elif request.status in ("expired", "escalated"):
            action["status"] = ActionStatus.BLOCKED.value
            action["why"] = "approval expired; escalated to a person"
            escalated = True
    return {"actions": actions, "escalated": escalated}
