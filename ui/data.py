"""The console's data access: everything a page shows or does goes through `ConsoleData`.

It is built on the service's Python API (`service.context.ServiceContext`: the investigation
store, the approval service, the audit log, the reviewers, `decide` which also enqueues the
resume job), the redaction vault and `service.insights`. Page code never touches SQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from core.errors import SleuthError
from governance.approvals import Decision
from governance.approvals_store import (
    ApprovalConflictError,
    ApprovalDecision,
    ApprovalNotFoundError,
    ApprovalNotPendingError,
    ApprovalRequest,
    ApprovalStatus,
)
from governance.audit import AuditEntry
from governance.audit_store import VerifyReport
from governance.redaction.vault import SqlVault
from governance.reviewers import Reviewer
from service import insights as ops
from service.context import ServiceContext
from service.investigations import Investigation, InvestigationEvent, InvestigationNotFoundError
from ui.present import (
    EvidenceView,
    Masker,
    cited_evidence,
    financial_amount,
    placeholders,
    restore,
    sort_key,
)

T = TypeVar("T")
Runner = Callable[[Coroutine[Any, Any, T]], T]
OutcomeKind = Literal["success", "warning", "error"]
PENDING = ApprovalStatus.PENDING.value


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class QueueRow:
    """One pending approval, with what the queue table and its ordering need."""

    request: ApprovalRequest
    severity: str | None
    root_cause: str | None
    confidence: float | None
    tier: str | None
    ticket_id: str
    approvals: int  # approvals recorded so far (two-approver actions)
    expired: bool
    refusal: str | None  # why this reviewer may not decide it; None when they may

    @property
    def id(self) -> int:
        """Return the approval request's id."""
        return self.request.id or 0

    @property
    def may_decide(self) -> bool:
        """Say whether the signed-in reviewer may decide this request now."""
        return self.refusal is None


@dataclass(frozen=True)
class TicketView:
    """The ticket as this reviewer may see it."""

    id: str
    source: str
    subject: str
    body: str
    requester: str
    priority: str
    redacted: bool
    recorded: bool = True


@dataclass(frozen=True)
class QueueCard:
    """Everything shown for one pending approval."""

    row: QueueRow
    ticket: TicketView
    summary: str
    evidence: list[EvidenceView]
    draft_text: str | None
    amount_text: str | None
    decisions: list[ApprovalDecision]
    investigation_status: str


@dataclass(frozen=True)
class Outcome:
    """What became of a reviewer's decision, in words for them."""

    kind: OutcomeKind
    message: str


@dataclass
class InvestigationDetail:
    """One investigation for the investigation view."""

    row: Investigation
    record: dict[str, Any]
    events: list[InvestigationEvent]
    audit: list[AuditEntry]
    approvals: list[ApprovalRequest] = field(default_factory=list)


class ConsoleData:
    """The console's one way to the service's data."""

    def __init__(self, ctx: ServiceContext, run: Runner[Any], *,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self.ctx = ctx
        self.run = run
        self.clock = clock
        self.vault = SqlVault(ctx.engine)
        self._tickets: dict[str, dict[str, Any] | None] = {}
        self._records: dict[tuple[str, datetime], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._originals_roles = frozenset(
            ctx.taxonomy.policy_for("send_customer_reply").approver_roles)

    # -- reviewers -------------------------------------------------------------------

    def authenticate(self, name: str, password: str) -> Reviewer:
        """Return the reviewer when the password matches (raises `ReviewerAuthError`)."""
        return self.ctx.reviewers.authenticate(name.strip().lower(), password)

    def reviewer(self, name: str) -> Reviewer | None:
        """Return the configured reviewer called `name` (None once removed from the file)."""
        return self.ctx.reviewers.get(name)

    def sees_originals(self, reviewer: Reviewer) -> bool:
        """Say whether the reviewer sees customer data unredacted.

        The roles that may approve what the customer reads (the taxonomy's approvers of
        `send_customer_reply`) see originals; the others see placeholders.
        """
        return reviewer.role in self._originals_roles

    # -- the approval queue ----------------------------------------------------------

    def _record(self, row: Investigation) -> dict[str, Any]:
        key = (row.id, row.updated_at)
        with self._lock:
            found = self._records.get(key)
        if found is None:
            found = row.record_dict() or {}
            with self._lock:
                if len(self._records) > 2000:
                    self._records.clear()
                self._records[key] = found
        return found

    def _investigations(self, ids: set[str]) -> dict[str, Investigation]:
        rows = {r.id: r for r in self.ctx.store.list(status="waiting_approval",
                                                     limit=max(len(ids), 1) + 100)
                if r.id in ids}
        for missing in ids - set(rows):
            try:
                rows[missing] = self.ctx.store.get(missing)
            except InvestigationNotFoundError:
                continue
        return rows

    def refusal(self, request: ApprovalRequest, reviewer: Reviewer,
                decisions: list[ApprovalDecision] | None, now: datetime) -> str | None:
        """Say why the reviewer may not decide the request now, or None."""
        if request.status != PENDING:
            return f"it is {request.status}"
        if now >= request.expires_at:
            return "it has expired; it goes to escalation and can no longer be decided here"
        if reviewer.role not in request.approver_roles:
            return (f"your role ({reviewer.role}) may not decide {request.level} actions; "
                    f"roles allowed: {', '.join(request.approver_roles)}")
        if decisions and any(d.reviewer == reviewer.name for d in decisions):
            return "you already approved it; a second approver must be someone else"
        return None

    def queue(self, reviewer: Reviewer, *, everything: bool = False) -> list[QueueRow]:
        """Return pending approvals in triage order; only those the reviewer may decide
        unless `everything`."""
        now = self.clock()
        pending = self.ctx.pending_approvals()
        investigations = self._investigations({r.investigation_id for r in pending})
        rows: list[QueueRow] = []
        for request in pending:
            decisions = (self.ctx.approvals.decisions(request.id or 0)
                         if request.approvals_required > 1 else [])
            refusal = self.refusal(request, reviewer, decisions, now)
            if refusal is not None and not everything:
                continue
            inv = investigations.get(request.investigation_id)
            diagnosis = (self._record(inv).get("diagnosis") or {}) if inv else {}
            rows.append(QueueRow(
                request=request, severity=diagnosis.get("severity"),
                root_cause=inv.root_cause if inv else None,
                confidence=inv.confidence if inv else None, tier=inv.tier if inv else None,
                ticket_id=inv.ticket_id if inv else "?",
                approvals=sum(d.decision == "approve" for d in decisions),
                expired=now >= request.expires_at, refusal=refusal))
        rows.sort(key=lambda r: sort_key(r.severity, r.request.created_at, r.request.level,
                                         r.expired))
        return rows

    def _ticket_payload(self, investigation_id: str) -> dict[str, Any] | None:
        with self._lock:
            if investigation_id in self._tickets:
                return self._tickets[investigation_id]
        entry = next((e for e in self.ctx.audit.entries(investigation_id=investigation_id)
                      if e.kind == "ticket_received"), None)
        payload = entry.payload if entry else None
        with self._lock:
            self._tickets[investigation_id] = payload
        return payload

    def _masking(self, investigation_id: str, payload: dict[str, Any] | None,
                 record: dict[str, Any]) -> tuple[dict[str, str], Masker]:
        texts = [str(payload.get(k) or "") for k in ("subject", "body", "requester")] \
            if payload else []
        originals: dict[str, str] = {}
        for name in placeholders(texts):
            found = self.vault.original_of(investigation_id, name)
            if found is not None:
                originals[name] = found
        customer = record.get("customer") or {}
        extra = [str(customer.get(k) or "") for k in ("email", "name")]
        return originals, Masker(originals, extra)

    def ticket(self, inv: Investigation,
               reviewer: Reviewer) -> tuple[TicketView, Callable[[str], str]]:
        """Return the ticket as the reviewer may see it, and the masker for other texts."""
        payload = self._ticket_payload(inv.id)
        record = self._record(inv)
        originals, masker = self._masking(inv.id, payload, record)
        clear = self.sees_originals(reviewer)
        if payload is None:
            ticket = inv.ticket_model()
            view = TicketView(ticket.id, ticket.source, "(not recorded yet)", "", "",
                              ticket.priority or "", redacted=True, recorded=False)
            return view, masker

        def show(key: str) -> str:
            text = str(payload.get(key) or "")
            return restore(text, originals) if clear else text

        view = TicketView(
            id=str(payload.get("ticket_id") or inv.ticket_id), source=inv.source,
            subject=show("subject"), body=show("body"), requester=show("requester"),
            priority=inv.ticket_model().priority or "", redacted=not clear)
        return view, (_identity if clear else masker)

    def card(self, row: QueueRow, reviewer: Reviewer) -> QueueCard:
        """Return everything the queue shows for one pending approval."""
        request = row.request
        try:
            inv = self.ctx.store.get(request.investigation_id)
        except InvestigationNotFoundError:
            missing = TicketView("?", "?", "(investigation not found)", "", "", "",
                                 redacted=True, recorded=False)
            return QueueCard(row, missing, "", [], None, None, [], "missing")
        record = self._record(inv)
        ticket, mask = self.ticket(inv, reviewer)
        diagnosis = record.get("diagnosis") or {}
        draft = request.final_text
        amount = (financial_amount(request.params, request.amount, record.get("evidence") or [])
                  if request.level == "financial" else None)
        return QueueCard(
            row=row, ticket=ticket, summary=mask(str(diagnosis.get("summary") or "")),
            evidence=cited_evidence(record, mask),
            draft_text=mask(draft) if draft is not None else None, amount_text=amount,
            decisions=self.ctx.approvals.decisions(request.id or 0),
            investigation_status=inv.status)

    # -- deciding --------------------------------------------------------------------

    def _settled_by(self, request: ApprovalRequest) -> str:
        decisions = self.ctx.approvals.decisions(request.id or 0)
        if not decisions:
            return request.status
        last = decisions[-1]
        return (f"{request.status} (last decision: {last.reviewer} ({last.role}) "
                f"{last.decision}d at {last.decided_at:%H:%M:%S} UTC)")

    def decide(self, request_id: int, reviewer: Reviewer, decision: Decision, *,
               seen_version: int, reason: str | None = None, edited_text: str | None = None,
               confirmed: bool = False) -> Outcome:
        """Apply a decision made on the page as it was shown (`seen_version`)."""
        reason = (reason or "").strip() or None
        try:
            current = self.ctx.approvals.get(request_id)
        except ApprovalNotFoundError as exc:
            return Outcome("error", exc.message)
        if current.status != PENDING:
            return Outcome("warning", f"Approval {request_id} is no longer pending: it is "
                                      f"{self._settled_by(current)}. Nothing was changed.")
        if self.clock() >= current.expires_at:
            return Outcome("warning", f"Approval {request_id} expired at "
                                      f"{current.expires_at:%Y-%m-%d %H:%M} UTC; it goes to "
                                      "escalation. Nothing was changed.")
        if current.version != seen_version:
            return Outcome("warning", f"Approval {request_id} changed while you were looking "
                                      f"at it ({self._settled_by(current)}). It is shown again "
                                      "as it stands now; nothing was changed.")
        if decision == "reject" and reason is None:
            return Outcome("error", "A rejection needs a reason.")
        if decision == "approve" and current.level == "financial" and not confirmed:
            return Outcome("error", "Tick the confirmation of the amount before approving a "
                                    "financial action.")
        if decision == "approve" and current.reason_required and reason is None:
            return Outcome("error", f"Approving {current.action_type} needs a written reason.")
        if edited_text is not None and edited_text.strip() == (current.draft_text or "").strip():
            edited_text = None  # unchanged: a plain approval
        try:
            row = self.run(self.ctx.decide(request_id, reviewer, decision, reason=reason,
                                           edited_text=edited_text))
        except ApprovalNotPendingError:
            latest = self.ctx.approvals.get(request_id)
            return Outcome("warning", f"Approval {request_id} was settled by someone else a "
                                      f"moment ago: {self._settled_by(latest)}. Nothing was "
                                      "changed.")
        except ApprovalConflictError as exc:
            return Outcome("warning", f"{exc.message}. Nothing was changed.")
        except SleuthError as exc:
            return Outcome("error", f"{exc.message} ({exc.code})")
        if row.status == PENDING:
            return Outcome("success", f"Your approval of {row.action_type} (approval "
                                      f"{request_id}) is recorded; it needs "
                                      f"{row.approvals_required} approvers, so someone else "
                                      "must approve it too.")
        verb = "Rejected" if row.status == ApprovalStatus.REJECTED.value else "Approved"
        edited = " with your edits" if edited_text is not None else ""
        return Outcome("success", f"{verb}{edited}: {row.action_type} (approval {request_id}). "
                                  f"Investigation {row.investigation_id} resumes.")

    # -- investigations --------------------------------------------------------------

    def recent(self, *, status: str | None = None, limit: int = 100) -> list[Investigation]:
        """Return recent investigations, newest first."""
        return self.ctx.store.list(status=status, limit=limit)

    def investigation(self, investigation_id: str) -> InvestigationDetail:
        """Return one investigation with its events, audit entries and approvals."""
        row = self.ctx.store.get(investigation_id)
        return InvestigationDetail(
            row=row, record=row.record_dict() or {},
            events=self.ctx.store.events(investigation_id, limit=2000),
            audit=self.ctx.audit.entries(investigation_id=investigation_id),
            approvals=self.ctx.approvals.list(investigation_id=investigation_id))

    def verify_audit(self) -> VerifyReport:
        """Walk the whole audit chain and report the first broken entry, if any."""
        return self.ctx.audit.verify()

    # -- operations ------------------------------------------------------------------

    def operations(self, days: float) -> tuple[ops.Insights, list[ops.Breaker]]:
        """Return the figures of the last `days` days and the breakers' states."""
        now = self.clock()
        since = now - timedelta(days=days)
        rows = ops.recent_investigations(self.ctx.store, since)
        figures = ops.compute(rows, self.ctx.approvals.list(), since=since, until=now)
        live = self.run(ops.live_breakers(self.ctx.settings))
        return figures, live if live is not None else ops.observed_breakers(
            self.ctx.settings, rows)


def _identity(text: str) -> str:
    return text
