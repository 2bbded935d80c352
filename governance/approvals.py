"""Human approval of actions: request, list, decide, expire and escalate.

The console, the CLI (`sleuth approvals`) and the investigation graph all use
`ApprovalService`. Two reviewers deciding at once cannot both win: the request row
is locked (`SELECT ... FOR UPDATE` on PostgreSQL) and every change is a conditional
UPDATE on its `version`, so a stale writer gets `ApprovalConflictError`.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from core.domain import ActionType
from core.errors import InvalidRequestError
from core.telemetry import get_logger
from governance.approvals_store import (
    ApprovalConflictError,
    ApprovalDecision,
    ApprovalEditNotAllowedError,
    ApprovalExpiredError,
    ApprovalMismatchError,
    ApprovalNotFoundError,
    ApprovalNotNeededError,
    ApprovalNotPendingError,
    ApprovalReasonRequiredError,
    ApprovalRequest,
    ApprovalStatus,
    ApproverRoleError,
    DuplicateApproverError,
    create_tables,
)
from governance.policy import PolicyDecision, decide
from governance.reviewers import Reviewer
from governance.taxonomy import Taxonomy

__all__ = ["DEFAULT_EXPIRY", "ApprovalRequest", "ApprovalService", "ApprovalStatus",
           "Decision", "create_tables", "idempotency_key"]

log = get_logger("sleuth.governance.approvals")
Decision = Literal["approve", "reject"]
Hook = Callable[[ApprovalRequest], None]
# a customer is waiting for most of these; after this a person on call must look
DEFAULT_EXPIRY = timedelta(hours=4)
_PENDING = ApprovalStatus.PENDING.value


def _utcnow() -> datetime:
    return datetime.now(UTC)


def idempotency_key(investigation_id: str, index: int, action_type: str) -> str:
    """Return the action's idempotency key: sha256 of `id:index:type`, 32 hex characters."""
    return hashlib.sha256(f"{investigation_id}:{index}:{action_type}".encode()).hexdigest()[:32]


def _fields(action: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    return dict(action.model_dump() if isinstance(action, BaseModel) else action)


class ApprovalService:
    """Stores approval requests and applies reviewers' decisions to them."""

    def __init__(self, engine: Engine, taxonomy: Taxonomy, *,
                 clock: Callable[[], datetime] = _utcnow, expiry: timedelta = DEFAULT_EXPIRY,
                 on_resolved: Hook | None = None, on_escalate: Hook | None = None) -> None:
        if expiry <= timedelta(0):
            raise InvalidRequestError("approval expiry must be positive")
        self.engine = engine
        # SQLite (engines from governance.db): take the write lock at BEGIN, so a second
        # reviewer waits and then reads the first one's decision, like FOR UPDATE does
        self._writer = (engine.execution_options(sqlite_begin="IMMEDIATE")
                        if engine.dialect.name == "sqlite" else engine)
        self.taxonomy = taxonomy
        self.clock = clock
        self.expiry = expiry
        self.on_resolved = on_resolved
        self.on_escalate = on_escalate

    def _session(self, *, write: bool = False) -> Session:
        return Session(self._writer if write else self.engine, expire_on_commit=False)

    def request(self, investigation_id: str, index: int, action: Mapping[str, Any] | BaseModel,
                decision: PolicyDecision, draft_text: str | None = None) -> ApprovalRequest:
        """Store a request for people to decide on; the same (investigation, index) returns it."""
        fields = _fields(action)
        # the taxonomy decides, not the caller: recompute and store our own decision
        checked = decide(fields, self.taxonomy)
        if checked.outcome != "needs_approval" or decision.action_type != checked.action_type:
            raise ApprovalNotNeededError(
                f"{checked.action_type}: {checked.why}", outcome=checked.outcome)
        if decision != checked:
            log.warning("approval.decision_recomputed", action_type=checked.action_type,
                        given=decision.why, used=checked.why)
        existing = self._find(investigation_id, index)
        if existing is not None:
            return self._same_action(existing, checked.action_type)
        now = self.clock()
        params = fields.get("params") or {}
        row = ApprovalRequest(
            idempotency_key=idempotency_key(investigation_id, index, checked.action_type),
            investigation_id=investigation_id, action_index=index,
            action_type=checked.action_type, action_reason=str(fields.get("reason") or ""),
            level=checked.level, params=json.loads(json.dumps(params, default=str)),
            amount=checked.amount, reason_required=checked.reason_required,
            approvals_required=checked.approvals_required,
            approver_roles=list(checked.approver_roles),
            taxonomy_version=checked.taxonomy_version, why=checked.why,
            created_at=now, expires_at=now + self.expiry, draft_text=draft_text,
        )
        with self._session(write=True) as session:
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()  # a concurrent request() stored it first
                stored = self._find(investigation_id, index)
                if stored is None:
                    raise
                return self._same_action(stored, checked.action_type)
            session.refresh(row)
        log.info("approval.requested", approval_id=row.id, investigation_id=investigation_id,
                 action_index=index, action_type=row.action_type, level=row.level,
                 approvals_required=row.approvals_required)
        return row

    @staticmethod
    def _same_action(row: ApprovalRequest, action_type: str) -> ApprovalRequest:
        if row.action_type != action_type:
            raise ApprovalMismatchError(
                f"approval {row.id} for ({row.investigation_id}, {row.action_index}) is for "
                f"{row.action_type}, not {action_type}")
        return row

    def _find(self, investigation_id: str, index: int) -> ApprovalRequest | None:
        with self._session() as session:
            return session.exec(select(ApprovalRequest).where(
                ApprovalRequest.investigation_id == investigation_id,
                ApprovalRequest.action_index == index)).first()

    def list(self, status: str | None = None,
             investigation_id: str | None = None) -> builtins.list[ApprovalRequest]:
        """List requests, oldest first, optionally only one status or one investigation."""
        query = select(ApprovalRequest).order_by(col(ApprovalRequest.id))
        if status is not None:
            if status not in set(ApprovalStatus):
                raise InvalidRequestError(f"unknown approval status {status!r}")
            query = query.where(ApprovalRequest.status == status)
        if investigation_id is not None:
            query = query.where(ApprovalRequest.investigation_id == investigation_id)
        with self._session() as session:
            return builtins.list(session.exec(query).all())

    def get(self, request_id: int) -> ApprovalRequest:
        """Return one request, or raise `ApprovalNotFoundError`."""
        with self._session() as session:
            row = session.get(ApprovalRequest, request_id)
        if row is None:
            raise ApprovalNotFoundError(f"no approval request {request_id}", id=request_id)
        return row

    def decisions(self, request_id: int) -> builtins.list[ApprovalDecision]:
        """Return the decisions taken on one request, in order."""
        with self._session() as session:
            return builtins.list(session.exec(
                select(ApprovalDecision).where(ApprovalDecision.request_id == request_id)
                .order_by(col(ApprovalDecision.id))).all())

    def decide(self, request_id: int, reviewer: Reviewer, decision: Decision,
               reason: str | None = None, edited_text: str | None = None) -> ApprovalRequest:
        """Record an authenticated reviewer's decision; return the request as it now stands."""
        reason = reason.strip() if reason and reason.strip() else None
        now = self.clock()
        with self._session(write=True) as session:
            row = session.exec(select(ApprovalRequest).where(ApprovalRequest.id == request_id)
                               .with_for_update()).first()
            if row is None:
                raise ApprovalNotFoundError(f"no approval request {request_id}", id=request_id)
            _check(row, reviewer, decision, reason, edited_text, now)
            prior = session.exec(select(ApprovalDecision).where(
                ApprovalDecision.request_id == request_id)).all()
            if any(d.reviewer == reviewer.name for d in prior):
                raise DuplicateApproverError(
                    f"{reviewer.name} already decided on approval {request_id}; "
                    "a second approval must come from someone else")
            approvals = 1 + sum(d.decision == "approve" for d in prior)
            status = (ApprovalStatus.REJECTED if decision == "reject"
                      else ApprovalStatus.APPROVED if approvals >= row.approvals_required
                      else ApprovalStatus.PENDING)
            values: dict[str, Any] = {"status": status.value, "version": row.version + 1}
            if status is not ApprovalStatus.PENDING:
                values["resolved_at"] = now
            if edited_text is not None:
                values["edited_text"] = edited_text
            session.add(ApprovalDecision(request_id=request_id, reviewer=reviewer.name,
                                         role=reviewer.role, decided_at=now, decision=decision,
                                         reason=reason, edited_text=edited_text))
            try:
                self._advance(session, row, values)
            except IntegrityError:
                raise DuplicateApproverError(
                    f"{reviewer.name} already decided on approval {request_id}") from None
            session.refresh(row)
        log.info("approval.decided", approval_id=request_id, reviewer=reviewer.name,
                 role=reviewer.role, decision=decision, status=row.status)
        if status is not ApprovalStatus.PENDING:
            self._call(self.on_resolved, row, "on_resolved")
        return row

    @staticmethod
    def _advance(session: Session, row: ApprovalRequest, values: dict[str, Any],
                 expected: str = _PENDING) -> None:
        """Apply `values` only if nobody changed the row since it was read; commit."""
        statement = (update(ApprovalRequest)
                     .where(col(ApprovalRequest.id) == row.id,
                            col(ApprovalRequest.version) == row.version,
                            col(ApprovalRequest.status) == expected)
                     .values(**values))
        try:
            changed = session.exec(statement).rowcount
            if changed != 1:
                session.rollback()
                raise ApprovalConflictError(
                    f"approval {row.id} was changed by someone else at the same time; "
                    "look at it again", id=row.id)
            session.commit()
        except OperationalError as exc:
            # SQLite: another writer held the database past the busy timeout
            session.rollback()
            raise ApprovalConflictError(f"approval {row.id} is busy; try again",
                                        id=row.id) from exc

    def expire_due(self) -> builtins.list[ApprovalRequest]:
        """Expire overdue pending requests and escalate them; return those escalated now."""
        now = self.clock()
        with self._session(write=True) as session:
            overdue = session.exec(select(ApprovalRequest).where(
                ApprovalRequest.status == _PENDING,
                col(ApprovalRequest.expires_at) <= now)).all()
            for row in overdue:
                try:
                    self._advance(session, row, {"status": ApprovalStatus.EXPIRED.value,
                                                 "resolved_at": now, "version": row.version + 1})
                    log.warning("approval.expired", approval_id=row.id,
                                action_type=row.action_type)
                except ApprovalConflictError:
                    continue  # decided or expired by someone else meanwhile
        escalated: builtins.list[ApprovalRequest] = []
        # also picks up requests whose escalation hook failed on an earlier run
        for row in self.list(status=ApprovalStatus.EXPIRED.value):
            if self._escalate(row, now):
                escalated.append(self.get(row.id or 0))
        return escalated

    def _escalate(self, row: ApprovalRequest, now: datetime) -> bool:
        """Claim one expired request, run the hook, and give it back if the hook fails."""
        with self._session(write=True) as session:
            claim = {"status": ApprovalStatus.ESCALATED.value, "escalated_at": now,
                     "version": row.version + 1}
            try:
                self._advance(session, row, claim, expected=ApprovalStatus.EXPIRED.value)
            except ApprovalConflictError:
                return False  # another process is escalating it
            row = session.get(ApprovalRequest, row.id, populate_existing=True) or row
        if self._call(self.on_escalate, row, "on_escalate"):
            log.warning("approval.escalated", approval_id=row.id, action_type=row.action_type)
            return True
        with self._session(write=True) as session:
            back = {"status": ApprovalStatus.EXPIRED.value, "escalated_at": None,
                    "version": row.version + 1}
            with contextlib.suppress(ApprovalConflictError):  # someone else moved it on
                self._advance(session, row, back, expected=ApprovalStatus.ESCALATED.value)
        return False

    @staticmethod
    def _call(hook: Hook | None, row: ApprovalRequest, name: str) -> bool:
        """Run a hook; a failure is logged, never undoes a stored decision."""
        if hook is None:
            return True
        try:
            hook(row)
        except Exception:
            log.exception("approval.hook_failed", hook=name, approval_id=row.id)
            return False
        return True


def _check(row: ApprovalRequest, reviewer: Reviewer, decision: str, reason: str | None,
           edited_text: str | None, now: datetime) -> None:
    """Raise the typed error for the first rule this decision breaks."""
    if row.status != _PENDING:
        raise ApprovalNotPendingError(f"approval {row.id} is {row.status}, not pending",
                                      id=row.id, status=row.status)
    if now >= row.expires_at:
        raise ApprovalExpiredError(
            f"approval {row.id} expired at {row.expires_at.isoformat()}; it is escalated",
            id=row.id, expires_at=row.expires_at.isoformat())
    if reviewer.role not in row.approver_roles:
        raise ApproverRoleError(
            f"{reviewer.name} ({reviewer.role}) may not decide {row.level} actions; "
            f"roles allowed: {', '.join(row.approver_roles)}", reviewer=reviewer.name,
            role=reviewer.role, level=row.level)
    if decision not in ("approve", "reject"):
        raise InvalidRequestError(f"decision must be approve or reject, not {decision!r}")
    if reason is None and (row.reason_required or decision == "reject"):
        what = "a rejection" if decision == "reject" else f"approving {row.action_type}"
        raise ApprovalReasonRequiredError(f"{what} needs a written reason", id=row.id)
    if edited_text is not None:
        if decision != "approve" or row.action_type != ActionType.SEND_CUSTOMER_REPLY.value:
            raise ApprovalEditNotAllowedError(
                "edited text is accepted only when approving send_customer_reply", id=row.id)
        if not edited_text.strip():
            raise ApprovalEditNotAllowedError("the edited reply is empty", id=row.id)
