"""Tables, canonical JSON and hashing of the audit chain, and its PostgreSQL guards.

Each entry's ``hash`` is ``sha256(prev_hash + canonical([seq, at, kind, investigation_id,
actor, payload]))`` where ``payload`` is the stored canonical JSON text; the first entry's
``prev_hash`` is 64 zeros. ``audit_head`` holds the last ``seq`` and ``hash`` in one row:
appenders lock it to serialise, and `verify` compares it with the chain's tail so that a
truncated tail is caught too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any, Literal, Protocol
from uuid import UUID

from pydantic import BaseModel, ConfigDict, SecretStr
from pydantic import Field as PydField
from sqlalchemy import BigInteger, Connection, DateTime, Engine, Table, Text, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, SQLModel

GENESIS_HASH = "0" * 64
HEAD_ID = 1
REDACTED = "[REDACTED]"
Problem = Literal["edited", "deleted or inserted", "reordered", "bad genesis"]


class AuditRecord(SQLModel, table=True):
    """One row of the append-only audit chain."""

    __tablename__ = "audit_entries"

    seq: int = Field(
        sa_type=BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    at: datetime = Field(sa_type=DateTime(timezone=True))
    kind: str = Field(max_length=40, index=True)
    investigation_id: str | None = Field(default=None, max_length=200, index=True)
    actor: str = Field(max_length=200)
    payload: str = Field(sa_type=Text)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)


class AuditHead(SQLModel, table=True):
    """The chain's last entry; its single row is the lock every appender takes."""

    __tablename__ = "audit_head"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    seq: int = Field(sa_type=BigInteger)
    hash: str = Field(max_length=64)


# SQLModel declares `__table__` dynamically; name the tables once, typed, for Core queries
ENTRIES: Table = AuditRecord.__table__  # type: ignore[attr-defined]
HEAD: Table = AuditHead.__table__  # type: ignore[attr-defined]


def to_jsonable(value: Any) -> Any:
    """Turn a payload into plain JSON types (dict, list, str, int, float, bool, None)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        # NaN and infinities are not JSON; keep them readable rather than failing the audit
        return value if math.isfinite(value) else str(value)
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((to_jsonable(v) for v in value), key=canonical_json)
    if isinstance(value, BaseModel):
        return to_jsonable(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, datetime):
        return iso_utc(value) if value.tzinfo else value.isoformat()
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if isinstance(value, date | Decimal | UUID | PurePath):
        return str(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


def canonical_json(value: Any) -> str:
    """Serialise JSON types with sorted keys and no whitespace, so equal data hash equally."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def iso_utc(at: datetime) -> str:
    """Return `at` in UTC as ISO 8601 with microseconds; naive values are taken as UTC."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.isoformat(timespec="microseconds")


def entry_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    kind: str,
    investigation_id: str | None,
    actor: str,
    payload: str,
) -> str:
    """Compute an entry's chain hash from its predecessor's hash and its own fields."""
    body = canonical_json([seq, iso_utc(at), kind, investigation_id, actor, payload])
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


class EntryFields(Protocol):
    """The stored fields of an entry, as a row, a record or an exported entry carries them."""

    @property
    def seq(self) -> int: ...
    @property
    def at(self) -> datetime: ...
    @property
    def kind(self) -> str: ...
    @property
    def investigation_id(self) -> str | None: ...
    @property
    def actor(self) -> str: ...
    @property
    def payload(self) -> str: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...


def record_hash(record: EntryFields, *, prev_hash: str | None = None) -> str:
    """Recompute a stored entry's hash from its fields (optionally from another prev_hash)."""
    return entry_hash(
        record.prev_hash if prev_hash is None else prev_hash,
        record.seq,
        record.at,
        record.kind,
        record.investigation_id,
        record.actor,
        record.payload,
    )


def seed_head(conn: Connection) -> None:
    """Create the head row if missing, pointing at the chain's current tail."""
    entries = ENTRIES
    last = conn.execute(
        select(entries.c.seq, entries.c.hash).order_by(entries.c.seq.desc()).limit(1)
    ).first()
    seq, last_hash = (int(last[0]), str(last[1])) if last else (0, GENESIS_HASH)
    values = {"id": HEAD_ID, "seq": seq, "hash": last_hash}
    head = HEAD
    if conn.dialect.name == "postgresql":
        conn.execute(pg_insert(head).values(values).on_conflict_do_nothing())
    else:
        conn.execute(sqlite_insert(head).values(values).on_conflict_do_nothing())


# Defence in depth: the application has no update or delete path, and on PostgreSQL the
# table refuses them too. A superuser can still drop the trigger; `verify` catches that.
_GUARD_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_entries is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""
_GUARD_TRIGGERS = (
    "CREATE OR REPLACE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE "
    "ON audit_entries FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()",
    "CREATE OR REPLACE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE "
    "ON audit_entries FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()",
)


def install_guards(bind: Engine | Connection) -> None:
    """Install PostgreSQL triggers that reject UPDATE, DELETE and TRUNCATE on audit_entries."""
    if bind.dialect.name != "postgresql":
        return
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            install_guards(conn)
        return
    conn = bind
    conn.execute(text(_GUARD_FUNCTION))
    for statement in _GUARD_TRIGGERS:
        conn.execute(text(statement))


class VerifyReport(BaseModel):
    """The outcome of walking the chain; names the first entry that breaks it."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    checked: int = PydField(description="entries found intact before the first break")
    first_broken_seq: int | None = None
    problem: Problem | None = None
    detail: str = ""
    head_hash: str = PydField(GENESIS_HASH, description="hash of the last intact entry")


class ChainWalker:
    """Check entries one at a time in seq order; stop at the first break."""

    def __init__(self, later_seq_with_hash: Callable[[int, str], int | None] | None = None) -> None:
        # finds a row after `seq` whose hash is the given one; only asked once, on a break
        self._later = later_seq_with_hash
        self.expected_seq = 1
        self.prev_hash = GENESIS_HASH
        self._prev_prev_hash: str | None = None
        self.checked = 0

    def _broken(self, seq: int, problem: Problem, detail: str) -> VerifyReport:
        return VerifyReport(
            ok=False,
            checked=self.checked,
            first_broken_seq=seq,
            problem=problem,
            detail=detail,
            head_hash=self.prev_hash,
        )

    def feed(self, row: EntryFields) -> VerifyReport | None:
        """Check the next row; return a report when it breaks the chain, else None."""
        seq, expected = row.seq, self.expected_seq
        if seq != expected:
            what = f"{seq - expected} entries missing" if seq > expected else "an extra entry"
            return self._broken(seq, "deleted or inserted", f"expected seq {expected}: {what}")
        content_ok = record_hash(row) == row.hash
        if row.prev_hash == self.prev_hash:
            if not content_ok:
                return self._broken(seq, "edited", "its contents no longer match its hash")
            self._prev_prev_hash, self.prev_hash = self.prev_hash, row.hash
            self.expected_seq += 1
            self.checked += 1
            return None
        return self._classify_link_break(row, content_ok)

    def _classify_link_break(self, row: EntryFields, content_ok: bool) -> VerifyReport:
        seq = row.seq
        later = self._later(seq, row.prev_hash) if self._later else None
        if later is not None:
            # the first misplaced row always links to a row stored after it
            return self._broken(seq, "reordered", f"it links to entry stored at seq {later}")
        if self.checked == 0:
            problem: Problem = "bad genesis" if content_ok else "edited"
            return self._broken(
                seq, problem, "the first entry does not start from the genesis hash"
            )
        if row.prev_hash == self._prev_prev_hash:
            return self._broken(
                seq - 1, "deleted or inserted", f"entry {seq} links past it to entry {seq - 2}"
            )
        if record_hash(row, prev_hash=self.prev_hash) == row.hash:
            return self._broken(seq, "edited", "its prev_hash was changed")
        if content_ok:
            return self._broken(
                seq - 1, "edited", f"its hash is not the one entry {seq} was chained to"
            )
        return self._broken(
            seq, "deleted or inserted", "it links to an entry that is not in the chain"
        )

    def finish(self, head_seq: int | None, head_hash: str | None) -> VerifyReport:
        """Compare the walked tail with the recorded head and return the final report."""
        last = self.expected_seq - 1
        if head_seq is None or head_hash is None:
            return self._broken(last + 1, "deleted or inserted", "the audit_head row is missing")
        if head_seq > last:
            return self._broken(
                last + 1,
                "deleted or inserted",
                f"the head records {head_seq} entries, found {last}",
            )
        if head_seq < last:
            return self._broken(
                head_seq + 1, "deleted or inserted", f"entries after {head_seq} bypassed the head"
            )
        if head_hash != self.prev_hash:
            return self._broken(last, "edited", "the last entry's hash differs from the head's")
        return VerifyReport(ok=True, checked=self.checked, head_hash=self.prev_hash)
