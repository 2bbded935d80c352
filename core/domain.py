"""The shared vocabulary of sleuth: tickets, evidence, root causes, actions.

These types follow `spec/case-format.md` (the case and replay-results contract);
their values must not change without a new format version.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SourceName = Literal["clickhouse", "stripe", "github", "linear", "statuspage", "docs"]
SOURCES: tuple[SourceName, ...] = ("clickhouse", "stripe", "github", "linear", "statuspage", "docs")


class RootCause(StrEnum):
    """The root causes a diagnosis can name."""

    PAYMENT_FAILED = "billing.payment_failed"
    QUOTA_EXCEEDED = "billing.quota_exceeded"
    DUPLICATE_CHARGE = "billing.duplicate_charge"
    INVALID_KEY = "auth.invalid_key"
    PROVIDER_OUTAGE = "upstream.provider_outage"
    PROVIDER_RATE_LIMIT = "upstream.provider_rate_limit"
    DEPLOY_REGRESSION = "regression.deploy"
    KNOWN_BUG = "known_bug"
    INVALID_REQUEST = "config.invalid_request"
    NO_FAULT_FOUND = "no_fault_found"


class Severity(StrEnum):
    """How bad it is for the customer."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ActionType(StrEnum):
    """Actions a diagnosis may propose; governance decides what happens to each."""

    ADD_INTERNAL_NOTE = "add_internal_note"
    TAG_TICKET = "tag_ticket"
    SET_PRIORITY = "set_priority"
    LINK_KNOWN_ISSUE = "link_known_issue"
    SEND_CUSTOMER_REPLY = "send_customer_reply"
    CREATE_BUG_REPORT = "create_bug_report"
    ESCALATE_TO_ONCALL = "escalate_to_oncall"
    ISSUE_REFUND = "issue_refund"
    APPLY_CREDIT = "apply_credit"


class ActionStatus(StrEnum):
    """Where a proposed action stands."""

    PROPOSED = "proposed"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXECUTED = "executed"
    BLOCKED = "blocked"


class Requester(BaseModel):
    """Who wrote the ticket."""

    model_config = ConfigDict(frozen=True)

    name: str = ""
    email: str


class Ticket(BaseModel):
    """A support ticket as the ticket system gave it. Its text is untrusted data."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, max_length=128)
    source: Literal["zendesk", "intercom", "email", "generic"]
    created_at: datetime
    subject: str = Field(max_length=1_000)
    body: str = Field(max_length=100_000)
    requester: Requester
    tags: list[str] = Field(default_factory=list)
    priority: Literal["low", "normal", "high", "urgent"] = "normal"

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        # YAML and some webhooks give numeric ids; the ticket system's id is a string
        return str(value) if isinstance(value, int) else value

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("created_at needs a time zone (e.g. 2026-09-14T10:22:00Z)")
        return value


class EvidenceRef(BaseModel):
    """A citation: which system, which object."""

    model_config = ConfigDict(frozen=True)

    source: SourceName
    ref: str | None = None


class Evidence(BaseModel):
    """One finding from a read-only query, citable by (source, ref)."""

    model_config = ConfigDict(frozen=True)

    source: SourceName
    ref: str = Field(min_length=1, max_length=512)
    title: str
    summary: str
    data: dict[str, Any] = Field(default_factory=dict)
    url: str | None = None
    observed_at: datetime

    def cite(self) -> EvidenceRef:
        """Return the reference a diagnosis uses to cite this."""
        return EvidenceRef(source=self.source, ref=self.ref)


class ProposedAction(BaseModel):
    """An action a diagnosis proposes; its type is free text until checked against the spec."""

    model_config = ConfigDict(frozen=True)

    type: str = Field(max_length=64)
    reason: str = Field("", max_length=2_000)
    params: dict[str, Any] = Field(default_factory=dict)


class QueryRequest(BaseModel):
    """A follow-up read-only query a model asks for."""

    model_config = ConfigDict(frozen=True)

    source: SourceName
    operation: str = Field(max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)


class Diagnosis(BaseModel):
    """What an investigation concludes; every cited ref must be among the gathered evidence."""

    model_config = ConfigDict(frozen=True)

    root_cause: RootCause
    severity: Severity
    confidence: float = Field(ge=0, le=1)
    summary: str = Field(min_length=1, max_length=4_000)
    cited: list[EvidenceRef] = Field(default_factory=list, max_length=50)
    reply_draft: str = Field("", max_length=8_000)
    actions: list[ProposedAction] = Field(default_factory=list, max_length=20)
    escalate: bool = False
    followup: list[QueryRequest] = Field(
        default_factory=list, max_length=10,
        description="more read-only queries wanted before concluding (model tiers only)",
    )
