"""The service's Python API: what the HTTP routes, the workers and the console all use.

`ServiceContext` holds the database engine and the stores over it (investigations,
approvals, audit), the reviewers, the job queue and the metrics. Build one per process
with `build_context(settings)`; nothing here reads the environment itself.
"""

from __future__ import annotations

import asyncio
import builtins
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, text
from sqlmodel import SQLModel

from core.domain import Ticket
from core.settings import Profile, Settings
from core.telemetry import Metrics, get_logger
from governance.approvals import ApprovalService, Decision
from governance.approvals_store import ApprovalRequest, ApprovalStatus
from governance.audit import AuditLog
from governance.db import create_all, is_postgres, make_engine
from governance.reviewers import Reviewer, Reviewers, load_reviewers
from governance.taxonomy import DEFAULT_ROOT as TAXONOMY_ROOT
from governance.taxonomy import Taxonomy, load_active
from service.investigations import Investigation, InvestigationStore
from service.queue.base import Job, JobQueue
from service.queue.sql import SqlJobQueue

log = get_logger("sleuth.service")
# the service's own tables; governance's `create_all` uses another key
_DDL_LOCK_KEY = 0x5E_1E_07_A1


def build_queue(settings: Settings, engine: Engine) -> JobQueue:
    """Return the configured job queue."""
    q = settings.queue
    if q.backend == "procrastinate":
        from service.queue.procrastinate_queue import ProcrastinateJobQueue

        url = (q.url or settings.database_url).get_secret_value()
        return ProcrastinateJobQueue(url, name=q.name, max_attempts=q.max_attempts,
                                     heartbeat_s=q.heartbeat_s, stalled_after_s=q.stalled_after_s)
    return SqlJobQueue(engine, name=q.name, lease_s=q.lease_s, max_attempts=q.max_attempts)


def prepare_database(engine: Engine) -> None:
    """Create every table the service uses (governance, investigations, jobs)."""
    create_all(engine)
    # several processes starting on an empty database take turns (SQLite: BEGIN IMMEDIATE)
    with engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
        if is_postgres(engine):
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _DDL_LOCK_KEY})
        SQLModel.metadata.create_all(conn, tables=[
            SQLModel.metadata.tables[name]
            for name in ("investigations", "investigation_events", "jobs")])


@dataclass
class ServiceContext:
    """Stores, queue and reviewers of one process."""

    settings: Settings
    engine: Engine
    store: InvestigationStore
    approvals: ApprovalService
    audit: AuditLog
    taxonomy: Taxonomy
    reviewers: Reviewers
    queue: JobQueue
    metrics: Metrics = field(default_factory=Metrics)

    # -- tickets ---------------------------------------------------------------------

    async def accept(self, source: str, event_id: str,
                     ticket: Ticket) -> tuple[Investigation, bool]:
        """Record a ticket event once and hand its job to the queue; return it and if new."""
        queue = self.queue
        if isinstance(queue, SqlJobQueue) and queue.engine is self.engine:
            # embedded: the row and its job in one transaction, one trip to the database
            row, created = await asyncio.to_thread(
                self.store.accept, source, event_id, ticket,
                in_transaction=lambda conn, iid: queue.insert_in(conn, Job("investigate", iid)))
            if created:
                queue.wake()
                return row, created
        else:
            row, created = await asyncio.to_thread(self.store.accept, source, event_id, ticket)
        if created or row.enqueued_at is None:
            await self.queue.enqueue(Job("investigate", row.id))
            await asyncio.to_thread(self.store.mark_enqueued, row.id)
        return row, created

    async def requeue_unenqueued(self, older_than: timedelta = timedelta(seconds=10)) -> int:
        """Enqueue accepted investigations whose enqueue never happened (a crash between)."""
        ids = await asyncio.to_thread(self.store.unenqueued, older_than)
        for investigation_id in ids:
            await self.queue.enqueue(Job("investigate", investigation_id))
            await asyncio.to_thread(self.store.mark_enqueued, investigation_id)
        return len(ids)

    async def resume_settled(self, limit: int = 200) -> int:
        """Enqueue resume jobs of paused investigations none of whose approvals still waits.

        A decision enqueues the resume itself; this catches the one whose enqueue failed
        after the decision was stored (the reviewer saw an error, the decision stands).
        """
        def settled() -> builtins.list[str]:
            paused = self.store.list(status="waiting_approval", limit=limit)
            return [row.id for row in paused
                    if not any(r.status == ApprovalStatus.PENDING.value
                               for r in self.approvals.list(investigation_id=row.id))]

        ids = await asyncio.to_thread(settled)
        for investigation_id in ids:
            await self.queue.enqueue(Job("resume", investigation_id))
        return len(ids)

    # -- approvals -------------------------------------------------------------------

    def pending_approvals(self) -> builtins.list[ApprovalRequest]:
        """Return pending approval requests, oldest first."""
        return self.approvals.list(ApprovalStatus.PENDING.value)

    async def decide(self, request_id: int, reviewer: Reviewer, decision: Decision, *,
                     reason: str | None = None,
                     edited_text: str | None = None) -> ApprovalRequest:
        """Apply a reviewer's decision; once the request is settled, resume its investigation."""
        request = await asyncio.to_thread(
            self.approvals.decide, request_id, reviewer, decision, reason=reason,
            edited_text=edited_text)
        if request.status != ApprovalStatus.PENDING.value:
            await self.queue.enqueue(Job("resume", request.investigation_id))
        return request

    async def expire_due(self) -> int:
        """Expire overdue approvals and resume their investigations (they escalate)."""
        expired = await asyncio.to_thread(self.approvals.expire_due)
        for investigation_id in sorted({r.investigation_id for r in expired}):
            await self.queue.enqueue(Job("resume", investigation_id))
        return len(expired)

    async def aclose(self) -> None:
        """Close the queue and the engine."""
        await self.queue.aclose()
        await asyncio.to_thread(self.engine.dispose)


def build_context(settings: Settings, *, metrics: Metrics | None = None,
                  queue: JobQueue | None = None, prepare: bool = True) -> ServiceContext:
    """Open the database (creating tables unless `prepare` is false), the queue and reviewers."""
    url = settings.database_url.get_secret_value()
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    if prepare:
        prepare_database(engine)
    taxonomy = load_active(settings.governance.taxonomy_dir or TAXONOMY_ROOT)
    return ServiceContext(
        settings=settings, engine=engine, store=InvestigationStore(engine),
        approvals=ApprovalService(engine, taxonomy, expiry=timedelta(
            hours=settings.governance.approval_expiry_hours)),
        audit=AuditLog(engine), taxonomy=taxonomy,
        reviewers=load_reviewers(settings.governance.reviewers_file,
                                 production=settings.profile is Profile.PRODUCTION),
        queue=queue or build_queue(settings, engine), metrics=metrics or Metrics())
