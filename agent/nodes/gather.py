"""Gather: the planned queries fan out in parallel (one `Send` per call)."""

from __future__ import annotations

import time
from typing import Any, Literal, TypedDict

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Send

from agent.context import AgentContext
from agent.state import CallRecord, InvestigationState, PlannedCall
from connectors.base import ConnectorFailure, ToolResult


class QueryTask(TypedDict):
    """What one parallel `query` branch receives."""

    call: PlannedCall
    investigation_id: str


def pending(state: InvestigationState) -> list[PlannedCall]:
    """Return planned calls of the current round that have no result yet."""
    done = {c["key"] for c in state.get("calls", []) if c["round"] == state.get("round", 0)}
    return [c for c in state.get("plan", []) if c["key"] not in done
            and c["round"] == state.get("round", 0)]


def fan_out(state: InvestigationState) -> list[Send] | Literal["expand"]:
    """Send every pending call to its own `query` branch, or go on to plan more."""
    calls = pending(state)
    if not calls:
        return "expand"
    return [Send("query", QueryTask(call=call, investigation_id=state["investigation_id"]))
            for call in calls]


async def query(task: QueryTask, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Run one connector call; a failure is recorded as a degraded source, never raised."""
    call = task["call"]
    ctx = runtime.context
    started = time.perf_counter()
    connector = ctx.connectors.get(call["source"])  # type: ignore[call-overload]
    if connector is None:
        result = ToolResult.model_validate({
            "source": call["source"], "operation": call["operation"], "params": call["params"],
            "error": ConnectorFailure(
                                kind="disabled", code="connector_missing",
                message=f"no connector {call['source']!r} is configured")})
    else:
        result = await connector.run(call["operation"], call["params"],
                                     budget_s=ctx.settings.call_budget_s)
    outcome = "ok" if result.ok else f"{result.error.kind}" if result.error else "?"
    ctx.audit("connector_call", task["investigation_id"], {
        "source": call["source"], "operation": call["operation"], "params": call["params"],
        "duration_ms": round(result.duration_ms, 3), "attempts": result.attempts,
        "outcome": result.error.code if result.error else "ok",
        "evidence": [e.ref for e in result.evidence]})
    get_stream_writer()({"step": "gather", "key": call["key"], "source": call["source"],
                         "operation": call["operation"], "outcome": outcome,
                         "evidence": len(result.evidence), "ms": round(result.duration_ms)})
    record: CallRecord = {"key": call["key"], "round": call["round"], "uses": call["uses"],
                          "result": result.model_dump(mode="json")}
    return {"calls": [record],
            "timings": {f"query:{call['key']}": (time.perf_counter() - started) * 1000}}


def results_by_playbook(state: InvestigationState) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Return each playbook query's evidence (as dicts), for templates that use results."""
    by_key = {c["key"]: c["result"] for c in state.get("calls", [])}
    found: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for use, key in state.get("query_keys", {}).items():
        if key in by_key:
            playbook, _, query_id = use.partition(".")
            found.setdefault(playbook, {})[query_id] = by_key[key].get("evidence", [])
    return found


async def expand(state: InvestigationState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Plan the queries that were waiting for other queries' results, now they are in."""
    from agent.nodes.route import plan_queries  # route imports this module

    deferred = state.get("deferred", [])
    if not deferred:
        return {"plan": []}
    started = time.perf_counter()
    ctx = runtime.context
    playbooks = {p.id: p for p in (ctx.store.get(r["id"], r["version"])
                                   for r in state.get("playbooks", []))}
    done = {c["key"] for c in state.get("calls", [])}
    keys = state.get("query_keys", {})
    waiting = {f"{d['playbook']}.{d['query']}" for d in deferred}
    ready, remaining = [], []
    for item in deferred:
        playbook = playbooks[item["playbook"]]
        query = next(q for q in playbook.queries if q.id == item["query"])
        deps = [f"{playbook.id}.{d}" for d in query.depends_on()]
        if any(d in waiting or (d in keys and keys[d] not in done) for d in deps):
            remaining.append(item)
        else:
            ready.append((playbook, query))
    if not ready:  # only cycles are left: they can never run
        ready = [(playbooks[i["playbook"]],
                  next(q for q in playbooks[i["playbook"]].queries if q.id == i["query"]))
                 for i in remaining]
        remaining = []
    plan, new_keys, skipped = plan_queries(state, ready, results_by_playbook(state),
                                           state.get("round", 0))
    get_stream_writer()({"step": "expand", "detail": f"{len(plan)} more queries from results, "
                                                     f"{len(skipped)} without a value"})
    return {"plan": plan, "query_keys": new_keys, "deferred": remaining,
            "skipped_queries": skipped,
            "timings": {f"expand:{len(deferred)}": (time.perf_counter() - started) * 1000}}


def after_expand(state: InvestigationState) -> list[Send] | Literal["expand", "diagnose"]:
    """Fan out newly planned calls; re-expand if queries still wait; else diagnose."""
    calls = pending(state)
    if calls:
        return [Send("query", QueryTask(call=call, investigation_id=state["investigation_id"]))
                for call in calls]
    return "expand" if state.get("deferred") else "diagnose"
