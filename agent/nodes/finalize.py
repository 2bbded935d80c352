"""Propose actions (spec types only) and finalize the investigation record."""

from __future__ import annotations

import time
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from agent.context import AgentContext
from agent.nodes.diagnose import gathered
from agent.state import InvestigationState
from core.domain import ActionStatus, ActionType

_KNOWN = {a.value for a in ActionType}


async def propose(state: InvestigationState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Keep the diagnosis's actions whose type the spec knows; drop and record the rest."""
    started = time.perf_counter()
    diagnosis = state.get("diagnosis") or {}
    kept: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    seen: set[str] = set()
    for action in diagnosis.get("actions", []):
        kind = str(action.get("type", ""))
        if kind not in _KNOWN:
            dropped.append({**action, "why": "not an action type of the spec"})
        elif kind in seen:
            dropped.append({**action, "why": "proposed twice"})
        else:
            seen.add(kind)
            kept.append({"type": kind, "reason": action.get("reason", ""),
                         "params": action.get("params", {}),
                         "status": ActionStatus.PROPOSED.value})
    if state.get("escalated") and "escalate_to_oncall" not in seen and not diagnosis:
        kept.append({"type": ActionType.ADD_INTERNAL_NOTE.value,
                     "reason": "no tier could diagnose: hand over to a person", "params": {},
                     "status": ActionStatus.PROPOSED.value})
    get_stream_writer()({"step": "propose", "detail": f"{len(kept)} action(s) proposed, "
                                                      f"{len(dropped)} dropped"})
    return {"actions": kept, "dropped_actions": dropped,
            "timings": {"propose": (time.perf_counter() - started) * 1000}}


async def finalize(state: InvestigationState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Assemble the investigation record from the state."""
    evidence, results = gathered(state)
    diagnosis = state.get("diagnosis")
    degraded = sorted({r.source for r in results if r.error is not None
                       and r.error.kind != "disabled"})
    cause = (diagnosis or {}).get("root_cause")
    winning = next((p for p in state.get("playbooks", [])
                    if cause and any(h.root_cause.value == cause for h in
                                     runtime.context.store.get(p["id"], p["version"]).hypotheses)),
                   None)
    record = {
        "investigation_id": state["investigation_id"],
        "ticket_id": state["ticket"]["id"],
        "customer": state.get("customer"),
        "categories": state.get("categories", []),
        "playbooks": state.get("playbooks", []),
        "winning_playbook": winning,
        "diagnosis": diagnosis,
        "tier": state.get("tier", "human"),
        "tiers_tried": state.get("tiers_tried", []),
        "escalated": bool(state.get("escalated")),
        "evidence": [e.model_dump(mode="json") for e in evidence],
        "calls": [{"source": r.source, "operation": r.operation, "params": r.params,
                   "ok": r.ok, "error": r.error.model_dump() if r.error else None,
                   "evidence": len(r.evidence), "duration_ms": round(r.duration_ms, 3),
                   "attempts": r.attempts} for r in results],
        "degraded_sources": degraded,
        "skipped_queries": state.get("skipped_queries", []),
        "followup_refused": state.get("followup_refused", []),
        "actions": state.get("actions", []),
        "dropped_actions": state.get("dropped_actions", []),
        "timings_ms": {k: round(v, 3) for k, v in state.get("timings", {}).items()},
    }
    get_stream_writer()({"step": "finalize", "detail": "record written"})
    return {"record": record}
