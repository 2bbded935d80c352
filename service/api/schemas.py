"""Request and response models of the HTTP API, so the OpenAPI document says exactly what is sent.

What the API never returns: the raw ticket (subject, body, requester). Investigations
carry the investigation record instead, which the graph has already redacted; the
ticket's id and source are enough to find the original in the ticket system.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from governance.approvals_store import ApprovalDecision, ApprovalRequest, ApprovalStatus
from service.investigations import Investigation, InvestigationEvent, Status

# -- errors ---------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    """What went wrong, with a stable code and the request id to find it in the logs."""

    code: str = Field(description="stable error code, e.g. unauthenticated, rate_limited")
    message: str
    request_id: str
    details: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    """The one shape of every error answer."""

    error: ErrorDetail


_ERROR_TEXT = {
    400: "The request breaks a rule (e.g. a rejection without a reason, a bad cursor).",
    401: "No bearer token, or a token that matches nobody.",
    403: "The token's role (or its governance reviewer's role) does not allow this.",
    404: "Nothing has that id.",
    409: "The approval was already decided, by this reviewer or by someone at the same moment.",
    422: "A parameter or the body does not match the schema.",
    429: "Too many requests for this token; see Retry-After.",
    503: "A dependency (database, queue) cannot be reached.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Return the `responses` entries of a route's error answers."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorResponse, "description": _ERROR_TEXT[status]}
        if status == 429:
            entry["headers"] = {"Retry-After": {"description": "seconds to wait",
                                                "schema": {"type": "integer"}}}
        if status == 401:
            entry["headers"] = {"WWW-Authenticate": {"description": "Bearer",
                                                     "schema": {"type": "string"}}}
        out[status] = entry
    return out


# -- investigations -------------------------------------------------------------------


class InvestigationSummary(BaseModel):
    """One investigation as listed: where it stands and what it found, without the record."""

    id: str
    status: Status
    source: str = Field(description="the webhook source that delivered the ticket")
    ticket_id: str
    event_id: str
    attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    root_cause: str | None
    tier: str | None = Field(description="the model tier (or rules) that diagnosed")
    confidence: float | None
    wall_ms: float | None
    error: str | None

    @classmethod
    def of(cls, row: Investigation) -> InvestigationSummary:
        """Return the summary of a stored investigation."""
        return cls(id=row.id, status=Status(row.status), source=row.source,
                   ticket_id=row.ticket_id, event_id=row.event_id, attempts=row.attempts,
                   created_at=row.created_at, updated_at=row.updated_at,
                   started_at=row.started_at, finished_at=row.finished_at,
                   root_cause=row.root_cause, tier=row.tier, confidence=row.confidence,
                   wall_ms=row.wall_ms, error=row.error)


class InvestigationOut(InvestigationSummary):
    """One investigation with its record once it has one (redacted by the graph)."""

    record: dict[str, Any] | None = Field(
        description="the investigation record: diagnosis, cited evidence, actions; "
                    "present once completed or waiting for approval")

    @classmethod
    def full(cls, row: Investigation) -> InvestigationOut:
        """Return a stored investigation with its record."""
        return cls(**InvestigationSummary.of(row).model_dump(), record=row.record_dict())


class InvestigationPage(BaseModel):
    """A page of investigations, newest first."""

    items: list[InvestigationSummary]
    next: str | None = Field(description="the URL of the next (older) page; null on the last")


class EventOut(BaseModel):
    """One progress event of an investigation (`seq` is the SSE id)."""

    seq: int
    at: datetime
    data: dict[str, Any]

    @classmethod
    def of(cls, row: InvestigationEvent) -> EventOut:
        """Return a stored event."""
        return cls(seq=row.seq, at=row.at, data=json.loads(row.data))


class EventList(BaseModel):
    """Progress events after a sequence number, for clients without Server-Sent Events."""

    investigation_id: str
    status: Status
    events: list[EventOut]
    last_seq: int = Field(description="pass as `after` to get the events that follow")


# -- approvals ------------------------------------------------------------------------


class DecisionOut(BaseModel):
    """One reviewer's decision on an approval request."""

    reviewer: str
    role: str
    decision: Literal["approve", "reject"]
    decided_at: datetime
    reason: str | None
    edited_text: str | None

    @classmethod
    def of(cls, row: ApprovalDecision) -> DecisionOut:
        """Return a stored decision."""
        decision: Literal["approve", "reject"] = "approve" if row.decision == "approve" \
            else "reject"
        return cls(reviewer=row.reviewer, role=row.role, decision=decision,
                   decided_at=row.decided_at, reason=row.reason, edited_text=row.edited_text)


class ApprovalOut(BaseModel):
    """An action waiting for (or decided by) people, with the decisions so far."""

    id: int
    investigation_id: str
    action_index: int
    action_type: str
    action_reason: str
    level: str
    amount: int | None = Field(description="minor units (cents), for financial actions")
    params: dict[str, Any]
    status: ApprovalStatus
    approvals_required: int
    approvals_received: int
    approver_roles: list[str]
    reason_required: bool
    created_at: datetime
    expires_at: datetime
    resolved_at: datetime | None
    escalated_at: datetime | None
    draft_text: str | None = Field(description="the reply the agent drafted (redacted)")
    edited_text: str | None
    decisions: list[DecisionOut]

    @classmethod
    def of(cls, row: ApprovalRequest, decisions: list[ApprovalDecision]) -> ApprovalOut:
        """Return a stored request with its decisions."""
        return cls(
            id=row.id or 0, investigation_id=row.investigation_id,
            action_index=row.action_index, action_type=row.action_type,
            action_reason=row.action_reason, level=row.level, amount=row.amount,
            params=dict(row.params), status=ApprovalStatus(row.status),
            approvals_required=row.approvals_required,
            approvals_received=sum(d.decision == "approve" for d in decisions),
            approver_roles=list(row.approver_roles), reason_required=row.reason_required,
            created_at=row.created_at, expires_at=row.expires_at,
            resolved_at=row.resolved_at, escalated_at=row.escalated_at,
            draft_text=row.draft_text, edited_text=row.edited_text,
            decisions=[DecisionOut.of(d) for d in decisions])


class ApprovalList(BaseModel):
    """Approval requests, oldest first."""

    items: list[ApprovalOut]


class DecisionIn(BaseModel):
    """A reviewer's decision on an approval request."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    reason: str | None = Field(None, max_length=2_000,
                               description="required to reject, and for some action types")
    edited_text: str | None = Field(None, max_length=20_000,
                                    description="only when approving send_customer_reply")


# -- health ---------------------------------------------------------------------------


class Alive(BaseModel):
    """The process answers."""

    status: Literal["ok"] = "ok"


class CheckResult(BaseModel):
    """One readiness check."""

    ok: bool
    error: str | None = None
    ms: float


class Readiness(BaseModel):
    """Whether the process can serve: every dependency it needs answers."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, CheckResult]
