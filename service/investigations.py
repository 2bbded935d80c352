"""Investigations as the service knows them: accepted tickets, their state and their events.

One row per accepted ticket event, unique on (source, ticket id, event id), so the same
delivery twice gives one investigation. The row moves
``queued → running → completed | waiting_approval → running → … | failed``; each move
is a conditional UPDATE, so two workers holding the same job (at-least-once delivery)
cannot both finish it. Events are the graph's progress, numbered per investigation, for
the API's Server-Sent Events and the console's timeline.

Methods are synchronous (SQLAlchemy); async callers run them with `asyncio.to_thread`.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, Index, UniqueConstraint, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from core.domain import Ticket
from core.errors import NotFoundError
from governance.approvals_store import UTCDateTime


class Status(StrEnum):
    """Where an investigation stands."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"


FINISHED = frozenset({Status.COMPLETED, Status.FAILED})


def _now() -> datetime:
    return datetime.now(UTC)


class Investigation(SQLModel, table=True):
    """One accepted ticket event and what became of it."""

    __tablename__ = "investigations"
    __table_args__ = (
        UniqueConstraint("dedupe_key", name="uq_investigations_dedupe"),
        Index("ix_investigations_status_created", "status", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    dedupe_key: str = Field(max_length=64)
    source: str = Field(max_length=16, index=True)
    ticket_id: str = Field(max_length=128, index=True)
    event_id: str = Field(max_length=128)
    ticket: str  # the ticket as JSON, as the ticket system gave it (redacted at intake)
    status: str = Field(default=Status.QUEUED.value, max_length=20)
    attempts: int = 0
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    enqueued_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    worker: str | None = Field(default=None, max_length=128)
    root_cause: str | None = Field(default=None, max_length=64)
    tier: str | None = Field(default=None, max_length=40)
    confidence: float | None = None
    wall_ms: float | None = None
    record: str | None = None  # the investigation record as JSON
    error: str | None = None

    def ticket_model(self) -> Ticket:
        """Return the ticket."""
        return Ticket.model_validate_json(self.ticket)

    def record_dict(self) -> dict[str, Any] | None:
        """Return the investigation record, when there is one."""
        return json.loads(self.record) if self.record else None


class InvestigationEvent(SQLModel, table=True):
    """One step of an investigation's progress."""

    __tablename__ = "investigation_events"
    __table_args__ = (UniqueConstraint("investigation_id", "seq",
                                       name="uq_investigation_events_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    investigation_id: str = Field(max_length=40, index=True)
    seq: int
    at: datetime = Field(sa_type=UTCDateTime)
    data: str  # JSON


class InvestigationNotFoundError(NotFoundError):
    """No investigation has that id."""

    code = "investigation_not_found"


_INSERT = Investigation.__table__.insert()  # type: ignore[attr-defined]


def dedupe_key(source: str, ticket_id: str, event_id: str) -> str:
    """Return the key that makes one investigation of one delivered event."""
    return hashlib.sha256(f"{source}\x1f{ticket_id}\x1f{event_id}".encode()).hexdigest()


def create_tables(engine: Engine) -> None:
    """Create the investigation tables when they do not exist yet."""
    tables = [SQLModel.metadata.tables[n] for n in ("investigations", "investigation_events")]
    SQLModel.metadata.create_all(engine, tables=tables)


class InvestigationStore:
    """Accepts tickets once, tracks each investigation, keeps its events."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- accepting -------------------------------------------------------------------

    def accept(self, source: str, event_id: str, ticket: Ticket, *,
               in_transaction: Callable[[Connection, str], None] | None = None,
               ) -> tuple[Investigation, bool]:
        """Record a delivered ticket event; return it and whether it is new.

        `in_transaction(connection, investigation_id)` runs in the same transaction as
        the insert (the embedded queue adds the job there, so both land or neither does).
        """
        key = dedupe_key(source, ticket.id, event_id)
        now = _now()
        iid = f"inv_{uuid.uuid4().hex[:20]}"
        values: dict[str, Any] = {"id": iid, "dedupe_key": key, "source": source,
                  "ticket_id": ticket.id, "event_id": event_id,
                  "ticket": ticket.model_dump_json(), "status": Status.QUEUED.value,
                  "attempts": 0, "created_at": now, "updated_at": now,
                  "enqueued_at": now if in_transaction is not None else None}
        # Core, not the ORM: this is the webhook's hot path (one INSERT, no unit of work)
        try:
            with self.engine.begin() as conn:
                conn.execute(_INSERT, values)
                if in_transaction is not None:
                    in_transaction(conn, iid)
            return Investigation.model_validate(values), True
        except IntegrityError:
            pass
        existing = self._by_key(key)
        if existing is None:  # pragma: no cover - the unique row vanished: not in this schema
            raise RuntimeError(f"duplicate key {key} but no row")
        return existing, False

    def _by_key(self, key: str) -> Investigation | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.exec(select(Investigation).where(
                Investigation.dedupe_key == key)).first()

    def mark_enqueued(self, investigation_id: str) -> None:
        """Note that the queue holds a job for the investigation."""
        self._update(investigation_id, None, enqueued_at=_now())

    def unenqueued(self, older_than: timedelta, limit: int = 100) -> builtins.list[str]:
        """Return queued investigations whose job was never handed to the queue."""
        cutoff = _now() - older_than
        with Session(self.engine) as session:
            rows = session.exec(
                select(Investigation.id)
                .where(Investigation.status == Status.QUEUED.value,
                       col(Investigation.enqueued_at).is_(None),
                       Investigation.created_at < cutoff)
                .order_by(col(Investigation.created_at)).limit(limit))
            return list(rows)

    # -- reading ---------------------------------------------------------------------

    def get(self, investigation_id: str) -> Investigation:
        """Return one investigation."""
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(Investigation, investigation_id)
        if row is None:
            raise InvestigationNotFoundError(f"no investigation {investigation_id!r}",
                                             investigation_id=investigation_id)
        return row

    def list(self, *, status: str | None = None, source: str | None = None,
             ticket_id: str | None = None, before: datetime | None = None,
             limit: int = 50) -> builtins.list[Investigation]:
        """Return investigations, newest first, filtered."""
        query = select(Investigation)
        if status is not None:
            query = query.where(Investigation.status == status)
        if source is not None:
            query = query.where(Investigation.source == source)
        if ticket_id is not None:
            query = query.where(Investigation.ticket_id == ticket_id)
        if before is not None:
            query = query.where(Investigation.created_at < before)
        query = query.order_by(col(Investigation.created_at).desc(),
                               col(Investigation.id).desc()).limit(limit)
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.exec(query))

    def counts(self) -> dict[str, int]:
        """Return how many investigations are in each status."""
        with Session(self.engine) as session:
            rows = session.exec(select(Investigation.status, func.count())
                                .group_by(Investigation.status))
            return {status: int(n) for status, n in rows}

    # -- moving ----------------------------------------------------------------------

    def _update(self, investigation_id: str, from_status: Iterable[Status] | None,
                **values: Any) -> bool:
        values.setdefault("updated_at", _now())
        stmt = update(Investigation).where(col(Investigation.id) == investigation_id)
        if from_status is not None:
            stmt = stmt.where(col(Investigation.status).in_([s.value for s in from_status]))
        with self.engine.begin() as conn:
            return conn.execute(stmt.values(**values)).rowcount == 1

    def start(self, investigation_id: str, worker: str) -> bool:
        """Mark the investigation running on `worker`; False if it is already finished."""
        now = _now()
        return self._update(
            investigation_id,
            (Status.QUEUED, Status.RUNNING, Status.WAITING_APPROVAL),
            status=Status.RUNNING.value, worker=worker, started_at=now,
            attempts=Investigation.attempts + 1)

    def finish(self, investigation_id: str, record: dict[str, Any],
               event: dict[str, Any] | None = None) -> bool:
        """Store the record (completed, or waiting for approvals) and its final event.

        Only a running investigation can finish, and the status and the event are written
        in one transaction: of two workers holding the same job, one finishes, once.
        """
        diagnosis = record.get("diagnosis") or {}
        status = Status.WAITING_APPROVAL if record.get("paused") else Status.COMPLETED
        now = _now()
        stmt = (update(Investigation)
                .where(col(Investigation.id) == investigation_id,
                       col(Investigation.status) == Status.RUNNING.value)
                .values(status=status.value, record=json.dumps(record, default=str),
                        root_cause=diagnosis.get("root_cause"), tier=record.get("tier"),
                        confidence=diagnosis.get("confidence"), wall_ms=record.get("wall_ms"),
                        finished_at=now if status is Status.COMPLETED else None, error=None,
                        updated_at=now))
        immediate = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        with Session(immediate) as session, session.begin():
            if session.exec(stmt).rowcount != 1:
                return False
            if event is not None:
                self._append(session, investigation_id, [event], now)
        return True

    def fail(self, investigation_id: str, error: str) -> bool:
        """Mark the investigation failed for good (its job ran out of attempts)."""
        return self._update(
            investigation_id, (Status.QUEUED, Status.RUNNING, Status.WAITING_APPROVAL),
            status=Status.FAILED.value, error=error[:2000], finished_at=_now())

    def note_error(self, investigation_id: str, error: str) -> None:
        """Record the latest attempt's error; the job will be tried again."""
        self._update(investigation_id, None, error=error[:2000])

    # -- events ----------------------------------------------------------------------

    def add_events(self, investigation_id: str, events: builtins.list[dict[str, Any]]) -> None:
        """Append progress events, numbered after the last one stored."""
        if not events:
            return
        # IMMEDIATE: a read-then-write transaction on SQLite must hold the write lock first
        immediate = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        with Session(immediate) as session, session.begin():
            self._append(session, investigation_id, events, _now())

    @staticmethod
    def _append(session: Session, investigation_id: str, events: builtins.list[dict[str, Any]],
                at: datetime) -> None:
        if session.get_bind().dialect.name == "postgresql":
            # two writers of one investigation's events take turns on its row (SQLite's
            # BEGIN IMMEDIATE already serialises them)
            session.exec(select(Investigation.id).where(
                Investigation.id == investigation_id).with_for_update())
        last = session.exec(select(func.max(InvestigationEvent.seq)).where(
            InvestigationEvent.investigation_id == investigation_id)).one()
        seq = int(last or 0)
        for event in events:
            seq += 1
            session.add(InvestigationEvent(investigation_id=investigation_id, seq=seq,
                                           at=at, data=json.dumps(event, default=str)))

    def events(self, investigation_id: str, after: int = 0,
               limit: int = 500) -> builtins.list[InvestigationEvent]:
        """Return events after sequence number `after`, in order."""
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.exec(
                select(InvestigationEvent)
                .where(InvestigationEvent.investigation_id == investigation_id,
                       InvestigationEvent.seq > after)
                .order_by(col(InvestigationEvent.seq)).limit(limit)))
