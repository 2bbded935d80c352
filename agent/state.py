"""The investigation's state, as checkpointed between steps (JSON-safe values only)."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


def merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Merge two dicts, the right one winning (a reducer for parallel writers)."""
    return {**(left or {}), **(right or {})}


class PlannedCall(TypedDict):
    """One connector call to make: `key` identifies it across playbooks and rounds."""

    key: str
    source: str
    operation: str
    params: dict[str, Any]
    uses: list[str]  # "<playbook id>.<query id>" (or "followup.<n>") that want this result
    round: int


class CallRecord(TypedDict):
    """A finished connector call: the ToolResult as JSON, and the call it answers."""

    key: str
    round: int
    uses: list[str]
    result: dict[str, Any]


class InvestigationState(TypedDict, total=False):
    """Everything an investigation knows; each node returns the keys it changes."""

    investigation_id: str
    ticket: dict[str, Any]  # the redacted Ticket
    customer: dict[str, Any] | None
    categories: list[str]
    window: dict[str, str]  # since/until as ISO text
    playbooks: list[dict[str, str]]  # [{id, version}]
    skipped_queries: Annotated[list[dict[str, str]], operator.add]
    query_keys: Annotated[dict[str, str], merge]  # "<playbook>.<query>" → call key
    deferred: list[dict[str, str]]  # queries waiting for other queries' results
    plan: list[PlannedCall]
    round: int
    calls: Annotated[list[CallRecord], operator.add]
    answer: dict[str, Any] | None  # the gateway's outcome of the latest diagnose round
    diagnosis: dict[str, Any] | None
    tier: str
    tiers_tried: Annotated[list[dict[str, Any]], operator.add]
    followup_refused: Annotated[list[dict[str, Any]], operator.add]
    actions: list[dict[str, Any]]
    dropped_actions: list[dict[str, Any]]
    escalated: bool
    timings: Annotated[dict[str, float], merge]
    record: dict[str, Any]
