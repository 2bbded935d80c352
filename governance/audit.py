"""The tamper-evident audit log: an append-only hash chain of everything an investigation did.

Entries record the ticket received, playbook versions, every connector call (source,
operation, parameters, duration, outcome), every model call (tier, provider, model,
tokens, cost, redacted input and output), policy decisions, approvals and executed
actions with their idempotency keys and results. Payloads pass through a scrub hook
before they are stored, so secrets never enter the chain. `AuditLog.verify` walks the
chain and names the first edited, deleted, inserted or reordered entry; tables are
created by `governance.db.create_all`.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TextIO

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine, Row, insert, select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from core.errors import ConfigurationError, InvalidRequestError, TransientError
from core.telemetry import scrub as default_scrub
from core.telemetry import scrub_text
from governance.audit_store import (
    ENTRIES,
    GENESIS_HASH,
    HEAD,
    HEAD_ID,
    AuditRecord,
    ChainWalker,
    VerifyReport,
    canonical_json,
    entry_hash,
    iso_utc,
    record_hash,
    to_jsonable,
)

__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "AuditKind",
    "AuditLog",
    "AuditUnavailableError",
    "VerifyReport",
    "verify_lines",
]

_KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# appends in one process queue here instead of each holding a pooled connection on the lock
_APPEND_LOCKS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


class AuditUnavailableError(TransientError):
    """The audit database could not be written; the step it records must not go ahead."""

    code = "audit_unavailable"


class AuditKind(StrEnum):
    """Kinds of entry the agent and governance write; other lowercase kinds are allowed."""

    TICKET_RECEIVED = "ticket_received"
    PLAYBOOKS = "playbooks"
    CONNECTOR_CALL = "connector_call"
    MODEL_CALL = "model_call"
    POLICY_DECISION = "policy_decision"
    APPROVAL = "approval"
    ACTION_EXECUTED = "action_executed"
    INVESTIGATION_FINISHED = "investigation_finished"


class AuditEntry(BaseModel):
    """One entry of the chain, its payload parsed."""

    model_config = ConfigDict(frozen=True)

    seq: int
    at: datetime
    kind: str
    investigation_id: str | None
    actor: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def from_row(cls, row: Row[Any] | AuditRecord) -> AuditEntry:
        """Build an entry from a stored row."""
        at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
        return cls(
            seq=row.seq,
            at=at.astimezone(UTC),
            kind=row.kind,
            investigation_id=row.investigation_id,
            actor=row.actor,
            payload=json.loads(row.payload),
            prev_hash=row.prev_hash,
            hash=row.hash,
        )

    def to_json_dict(self) -> dict[str, Any]:
        """Return the exported form: everything needed to recompute the hash offline."""
        return {
            "seq": self.seq,
            "at": iso_utc(self.at),
            "kind": self.kind,
            "investigation_id": self.investigation_id,
            "actor": self.actor,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    def as_record(self) -> AuditRecord:
        """Return the stored form, payload as canonical JSON text."""
        return AuditRecord(
            seq=self.seq,
            at=self.at,
            kind=self.kind,
            investigation_id=self.investigation_id,
            actor=self.actor,
            payload=canonical_json(self.payload),
            prev_hash=self.prev_hash,
            hash=self.hash,
        )

    def is_intact(self) -> bool:
        """Say whether the entry's fields still produce its hash."""
        return record_hash(self.as_record()) == self.hash


class AuditLog:
    """Append to, read, verify and export the audit chain stored in one database."""

    def __init__(self, engine: Engine, *, scrub: Callable[[Any], Any] | None = None) -> None:
        self._engine = engine
        self._scrub = scrub if scrub is not None else default_scrub
        self._postgres = engine.dialect.name == "postgresql"
        # SQLite takes its write lock at BEGIN, so two appenders never read the same head
        self._writer = engine.execution_options(sqlite_begin="IMMEDIATE")
        with _LOCKS_GUARD:
            self._lock = _APPEND_LOCKS.setdefault(engine, threading.Lock())

    def append(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        investigation_id: str | None = None,
        actor: str = "system",
    ) -> AuditEntry:
        """Scrub the payload and chain a new entry after the current head."""
        kind = str(kind)  # an AuditKind member hashes and stores as its value
        if not _KIND.match(kind):
            raise InvalidRequestError(f"invalid audit kind {kind!r}", kind=kind)
        if not isinstance(payload, Mapping):
            raise InvalidRequestError("an audit payload must be a mapping")
        if not actor:
            raise InvalidRequestError("an audit entry needs an actor")
        body = canonical_json(to_jsonable(self._scrub(to_jsonable(payload))))
        try:
            return self._append(kind, body, investigation_id, actor)
        except (OperationalError, InterfaceError) as exc:
            # a retry may add a second entry if this one's commit was lost; the chain allows it
            reason = scrub_text(str(exc.orig or exc))
            raise AuditUnavailableError(f"audit append failed: {reason}") from exc

    def _append(self, kind: str, body: str, investigation_id: str | None, actor: str) -> AuditEntry:
        with self._lock, self._writer.connect() as conn, conn.begin():
            head = conn.execute(
                select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == HEAD_ID).with_for_update()
            ).first()
            if head is None:
                raise ConfigurationError("the audit log has no head row: run create_all first")
            seq, prev_hash, at = int(head.seq) + 1, str(head.hash), datetime.now(UTC)
            digest = entry_hash(prev_hash, seq, at, kind, investigation_id, actor, body)
            conn.execute(
                insert(ENTRIES).values(
                    seq=seq,
                    at=at,
                    kind=kind,
                    investigation_id=investigation_id,
                    actor=actor,
                    payload=body,
                    prev_hash=prev_hash,
                    hash=digest,
                )
            )
            conn.execute(update(HEAD).where(HEAD.c.id == HEAD_ID).values(seq=seq, hash=digest))
        return AuditEntry(
            seq=seq,
            at=at,
            kind=kind,
            investigation_id=investigation_id,
            actor=actor,
            payload=json.loads(body),
            prev_hash=prev_hash,
            hash=digest,
        )

    async def aappend(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        investigation_id: str | None = None,
        actor: str = "system",
    ) -> AuditEntry:
        """Append from async code without blocking the event loop."""
        return await asyncio.to_thread(
            self.append, kind, payload, investigation_id=investigation_id, actor=actor
        )

    def entries(
        self, *, investigation_id: str | None = None, after_seq: int = 0, limit: int | None = None
    ) -> list[AuditEntry]:
        """Return entries in chain order, optionally of one investigation."""
        query = select(ENTRIES).where(ENTRIES.c.seq > after_seq).order_by(ENTRIES.c.seq)
        if investigation_id is not None:
            query = query.where(ENTRIES.c.investigation_id == investigation_id)
        if limit is not None:
            query = query.limit(limit)
        with self._engine.connect() as conn:
            return [AuditEntry.from_row(row) for row in conn.execute(query)]

    def verify(self, *, batch_size: int = 1000) -> VerifyReport:
        """Walk the whole chain in seq order, streaming, and name the first broken entry."""
        with self._snapshot() as conn:

            def later(seq: int, digest: str) -> int | None:
                found = conn.execute(
                    select(ENTRIES.c.seq)
                    .where(ENTRIES.c.hash == digest, ENTRIES.c.seq > seq)
                    .limit(1)
                ).scalar()
                return None if found is None else int(found)

            head = conn.execute(select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == HEAD_ID)).first()
            walker = ChainWalker(later)
            for row in self._stream(conn, select(ENTRIES).order_by(ENTRIES.c.seq), batch_size):
                report = walker.feed(row)
                if report is not None:
                    return report
            if head is None:
                return walker.finish(None, None)
            return walker.finish(int(head.seq), str(head.hash))

    def export(self, out: TextIO, *, investigation_id: str | None = None) -> int:
        """Write entries as JSON lines in chain order; return how many were written."""
        query = select(ENTRIES).order_by(ENTRIES.c.seq)
        if investigation_id is not None:
            query = query.where(ENTRIES.c.investigation_id == investigation_id)
        count = 0
        with self._snapshot() as conn:
            for row in self._stream(conn, query, 1000):
                entry = AuditEntry.from_row(row)
                out.write(json.dumps(entry.to_json_dict(), sort_keys=True, ensure_ascii=False))
                out.write("\n")
                count += 1
        return count

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """Hold one read transaction, so a long walk sees one consistent state of the chain."""
        options = {"isolation_level": "REPEATABLE READ"} if self._postgres else {}
        with self._engine.execution_options(**options).connect() as conn:
            conn.begin()
            try:
                yield conn
            finally:
                conn.rollback()  # read only: nothing to keep

    @staticmethod
    def _stream(conn: Connection, query: Any, batch_size: int) -> Iterator[Row[Any]]:
        # a server-side cursor on PostgreSQL; SQLite steps through rows lazily anyway
        yield from conn.execute(query, execution_options={"yield_per": batch_size})


def verify_lines(lines: Iterable[str]) -> VerifyReport:
    """Verify an export (JSON lines of the whole chain) without the database."""
    walker = ChainWalker()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = AuditEntry.model_validate(json.loads(line))
        except ValueError as exc:  # JSON and validation errors alike
            raise InvalidRequestError(f"line {number} is not an audit entry: {exc}") from None
        report = walker.feed(entry.as_record())
        if report is not None:
            return report
    return walker.finish(walker.expected_seq - 1, walker.prev_hash)
