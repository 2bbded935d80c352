"""The approval tables and the typed errors of deciding on an approval request.

`approval_requests` holds one row per action that needs a person (one per
(investigation_id, action_index)); `approval_decisions` holds every reviewer's
decision on it. `version` is bumped by every change to a request so that two
reviewers deciding at once cannot both win (see `ApprovalService.decide`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, Engine, TypeDecorator, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.errors import AuthError, InvalidRequestError, NotFoundError


class ApprovalStatus(StrEnum):
    """Where an approval request stands."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    ESCALATED = "escalated"


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored with its time zone and always read back as aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; approvals store aware UTC times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        # SQLite keeps no zone: what was written was UTC
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ApprovalRequest(SQLModel, table=True):
    """One action waiting for (or decided by) people."""

    __tablename__ = "approval_requests"
    __table_args__ = (UniqueConstraint("investigation_id", "action_index",
                                       name="uq_approval_requests_action"),)

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=32, unique=True)
    investigation_id: str = Field(max_length=128, index=True)
    action_index: int
    action_type: str = Field(max_length=64)
    action_reason: str = ""
    level: str = Field(max_length=32)
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    amount: int | None = None
    reason_required: bool = False
    approvals_required: int = 1
    approver_roles: list[str] = Field(default_factory=list, sa_type=JSON)
    taxonomy_version: str = Field(max_length=32)
    why: str = ""
    status: str = Field(default=ApprovalStatus.PENDING.value, max_length=16, index=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    escalated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    draft_text: str | None = None
    edited_text: str | None = None
    version: int = 0

    @property
    def final_text(self) -> str | None:
        """Return the reply text to send: the reviewer's edit, else the draft."""
        return self.edited_text if self.edited_text is not None else self.draft_text


class ApprovalDecision(SQLModel, table=True):
    """One reviewer's decision on one request."""

    __tablename__ = "approval_decisions"
    __table_args__ = (UniqueConstraint("request_id", "reviewer",
                                       name="uq_approval_decisions_reviewer"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="approval_requests.id", index=True)
    reviewer: str = Field(max_length=64)
    role: str = Field(max_length=32)
    decided_at: datetime = Field(sa_type=UTCDateTime)
    decision: str = Field(max_length=8)
    reason: str | None = None
    edited_text: str | None = None


def create_tables(engine: Engine) -> None:
    """Create the approval tables when they do not exist yet."""
    tables = [SQLModel.metadata.tables[name]
              for name in ("approval_requests", "approval_decisions")]
    SQLModel.metadata.create_all(engine, tables=tables)


class ApprovalNotFoundError(NotFoundError):
    """No approval request has that id."""

    code = "approval_not_found"


class ApprovalNotNeededError(InvalidRequestError):
    """The taxonomy does not send this action to a person (it runs, or it is refused)."""

    code = "approval_not_needed"


class ApprovalMismatchError(InvalidRequestError):
    """An approval already exists for this (investigation, index) with another action type."""

    code = "approval_mismatch"


class ApprovalNotPendingError(InvalidRequestError):
    """The request was already decided, expired or escalated."""

    code = "approval_not_pending"


class ApprovalExpiredError(ApprovalNotPendingError):
    """The request's time ran out before this decision; it goes to escalation."""

    code = "approval_expired"


class ApproverRoleError(AuthError):
    """The reviewer's role may not approve actions of this level."""

    code = "approval_role_denied"


class ApprovalReasonRequiredError(InvalidRequestError):
    """This decision needs a written reason."""

    code = "approval_reason_required"


class ApprovalEditNotAllowedError(InvalidRequestError):
    """Edited text is accepted only when approving a customer reply."""

    code = "approval_edit_not_allowed"


class DuplicateApproverError(InvalidRequestError):
    """The same reviewer already decided on this request."""

    code = "approval_duplicate_reviewer"


class ApprovalConflictError(InvalidRequestError):
    """Another decision changed the request at the same moment; look again."""

    code = "approval_conflict"
