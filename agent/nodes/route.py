"""Route: choose the playbooks that apply, and plan their queries (deduplicated)."""

from __future__ import annotations

import functools
import json
import re
import time
from datetime import datetime, timedelta
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from agent.context import AgentContext
from agent.state import InvestigationState, PlannedCall
from playbooks.schema import INLINE, TEMPLATE, Playbook, Query
from playbooks.signals import resolve


def applies(playbook: Playbook, categories: list[str]) -> bool:
    """Say whether a playbook covers a ticket of these categories."""
    wanted = set(playbook.applies_to.categories)
    return "any" in wanted or "any" in categories or bool(wanted & set(categories))


def query_variables(state: InvestigationState, query: Query) -> dict[str, Any]:
    """Return the values a query's templates may use, with the query's own window."""
    ticket = state["ticket"]
    created = datetime.fromisoformat(ticket["created_at"])
    window = dict(state["window"])
    if query.window is not None:
        since = created - timedelta(hours=query.window.before_hours)
        if query.window.period_start:
            since = created.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        window = {"since": since.isoformat(),
                  "until": (created + timedelta(minutes=query.window.after_minutes)).isoformat()}
    email = ticket["requester"]["email"]
    return {
        "ticket": {**ticket, "requester": {**ticket["requester"],
                                           "domain": email.rsplit("@", 1)[-1]}},
        "customer": state.get("customer") or {},
        "window": window,
    }


def _substitute(values: dict[str, str], match: re.Match[str]) -> str:
    return values[match.group(1)]


def fill(query: Query, variables: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """Fill a query's parameter templates; return (params, None) or (None, what is missing).

    A value that is one template keeps the resolved value's type; templates inside
    longer text are rendered as text.
    """
    params: dict[str, Any] = {}
    for key, value in query.params.items():
        if not isinstance(value, str) or "{{" not in value:
            params[key] = value
            continue
        whole = TEMPLATE.match(value)
        if whole is not None:
            resolved = resolve(variables, whole.group(1))
            if resolved is None or resolved == "":
                return None, whole.group(1)
            params[key] = resolved
            continue
        values: dict[str, str] = {}
        for path in INLINE.findall(value):
            resolved = resolve(variables, path)
            if resolved is None or resolved == "":
                return None, path
            values[path] = str(resolved)
        params[key] = INLINE.sub(functools.partial(_substitute, values), value)
    return params, None


def plan_queries(state: InvestigationState, items: list[tuple[Playbook, Query]],
                 results: dict[str, dict[str, list[dict[str, Any]]]],
                 round_: int) -> tuple[list[PlannedCall], dict[str, str], list[dict[str, str]]]:
    """Fill and deduplicate queries; return (new calls, query→call keys, skipped)."""
    done = {c["key"] for c in state.get("calls", [])}
    plan: dict[str, PlannedCall] = {}
    keys: dict[str, str] = {}
    skipped: list[dict[str, str]] = []
    for playbook, query in items:
        use = f"{playbook.id}.{query.id}"
        variables = {**query_variables(state, query), "results": results.get(playbook.id, {})}
        params, missing = fill(query, variables)
        if params is None:
            skipped.append({"query": use, "reason": f"no value for {missing}"})
            continue
        key = call_key(query.source, query.operation, params)
        keys[use] = key
        if key in done:
            continue
        if key in plan:
            plan[key]["uses"].append(use)
        else:
            plan[key] = PlannedCall(key=key, source=query.source, operation=query.operation,
                                    params=params, uses=[use], round=round_)
    return list(plan.values()), keys, skipped


def call_key(source: str, operation: str, params: dict[str, Any]) -> str:
    """Return the identity of a call: same source, operation and params, same key."""
    return f"{source}.{operation}:{json.dumps(params, sort_keys=True, default=str)}"


async def route(state: InvestigationState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Pick the applicable playbooks and plan their queries for the gather step."""
    started = time.perf_counter()
    ctx = runtime.context
    write = get_stream_writer()
    chosen = [p for p in ctx.store.active(ctx.pins) if applies(p, state["categories"])]
    ready = [(p, q) for p in chosen for q in p.queries if not q.depends_on()]
    deferred = [{"playbook": p.id, "query": q.id} for p in chosen for q in p.queries
                if q.depends_on()]
    plan, keys, skipped = plan_queries(state, ready, {}, 0)
    ctx.audit("playbooks", state["investigation_id"], {
        "playbooks": [{"id": p.id, "version": p.version} for p in chosen],
        "planned_calls": len(plan), "waiting": len(deferred), "skipped": skipped})
    names = ", ".join(p.key for p in chosen) or "none"
    write({"step": "route", "detail": f"playbooks: {names}; {len(plan)} queries planned, "
                                      f"{len(deferred)} waiting for results"})
    return {
        "playbooks": [{"id": p.id, "version": p.version} for p in chosen],
        "plan": plan, "query_keys": keys, "deferred": deferred, "skipped_queries": skipped,
        "timings": {"route": (time.perf_counter() - started) * 1000},
    }
