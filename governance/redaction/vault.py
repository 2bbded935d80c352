"""Where placeholders live: the same value gets the same placeholder within an investigation."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from sqlalchemy import DateTime, Engine, Table, Text, UniqueConstraint, func, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

SECRET_KIND = "SECRET"  # noqa: S105 - a placeholder kind
# PostgreSQL advisory lock around CREATE TABLE, so workers starting together take turns
_DDL_LOCK_KEY = 0x5E_1E_07_A1
PLACEHOLDER = re.compile(r"<([A-Z]+)_([1-9][0-9]*)>")
_SEPARATORS = re.compile(r"[\s().\-/]")


def normalize(kind: str, value: str) -> str:
    """Return the form two spellings of one value share (case of e-mails, phone separators)."""
    value = value.strip()
    if kind == "EMAIL":
        return value.lower()
    if kind in ("PHONE", "CARD", "IBAN"):
        value = _SEPARATORS.sub("", value).upper()
        return "+" + value[2:] if kind == "PHONE" and value.startswith("00") else value
    if kind == "IP":
        return value.lower()
    return value


def placeholder(kind: str, number: int) -> str:
    """Format the n-th placeholder of a kind, e.g. <EMAIL_1>."""
    return f"<{kind}_{number}>"


@runtime_checkable
class Vault(Protocol):
    """Maps originals to placeholders per investigation; secrets are never kept, only counted."""

    def placeholder_for(self, investigation_id: str, entity_type: str, original: str) -> str:
        """Return the placeholder of `original` in this investigation, allocating one if new."""
        ...

    def original_of(self, investigation_id: str, placeholder: str) -> str | None:
        """Return the original behind a placeholder, or None (unknown, or a secret)."""
        ...


def _digest(salt: bytes, kind: str, value: str) -> str:
    message = f"{kind}\x00{normalize(kind, value)}".encode()
    return hmac.new(salt, message, hashlib.sha256).hexdigest()


class InMemoryVault:
    """A vault for one process: tests, benchmarks, a single-node run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._salt = secrets.token_bytes(32)  # secrets are keyed by HMAC(salt, value) only
        self._by_digest: dict[tuple[str, str], str] = {}
        self._originals: dict[tuple[str, str], str] = {}
        self._counts: dict[tuple[str, str], int] = {}

    def placeholder_for(self, investigation_id: str, entity_type: str, original: str) -> str:
        """Return the placeholder of `original` in this investigation, allocating one if new."""
        key = (investigation_id, _digest(self._salt, entity_type, original))
        with self._lock:
            known = self._by_digest.get(key)
            if known is not None:
                return known
            number = self._counts.get((investigation_id, entity_type), 0) + 1
            self._counts[(investigation_id, entity_type)] = number
            name = placeholder(entity_type, number)
            self._by_digest[key] = name
            if entity_type != SECRET_KIND:
                self._originals[(investigation_id, name)] = original
            return name

    def original_of(self, investigation_id: str, placeholder: str) -> str | None:
        """Return the original behind a placeholder, or None (unknown, or a secret)."""
        with self._lock:
            return self._originals.get((investigation_id, placeholder))


class RedactionSalt(SQLModel, table=True):
    """The random salt that keys an investigation's value digests."""

    __tablename__ = "redaction_salt"

    investigation_id: str = Field(primary_key=True, max_length=200)
    salt: str = Field(max_length=64)


class RedactionEntry(SQLModel, table=True):
    """One placeholder of one investigation; `original` stays NULL for secrets."""

    __tablename__ = "redaction_entry"
    __table_args__ = (UniqueConstraint("investigation_id", "digest"),
                      UniqueConstraint("investigation_id", "placeholder"))

    id: int | None = Field(default=None, primary_key=True)
    investigation_id: str = Field(max_length=200, index=True)
    kind: str = Field(max_length=32)
    placeholder: str = Field(max_length=64)
    digest: str = Field(max_length=64)
    original: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC),
                                 sa_type=DateTime(timezone=True))


# SQLModel declares `__table__` dynamically; name the tables once, typed
SALTS: Table = RedactionSalt.__table__  # type: ignore[attr-defined]
ENTRIES: Table = RedactionEntry.__table__  # type: ignore[attr-defined]


class SqlVault:
    """A vault in SQL (SQLite or PostgreSQL), shared by every worker of a deployment.

    Values are looked up by HMAC(pepper + per-investigation salt, value); secrets are stored
    as that digest alone. Concurrent allocations race on unique constraints and retry.
    """

    _ATTEMPTS = 5

    def __init__(self, engine: Engine, *, pepper: bytes = b"", create: bool = True) -> None:
        self.engine = engine
        self._pepper = pepper
        self._lock = threading.Lock()
        self._salts: dict[str, bytes] = {}
        # SQLite: read-then-write transactions take the write lock at BEGIN, or two
        # processes (or two vaults of one process) that both read first fail on the upgrade
        self._writer = (engine.execution_options(sqlite_begin="IMMEDIATE")
                        if engine.dialect.name == "sqlite" else engine)
        if create:
            with engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                 {"key": _DDL_LOCK_KEY})
                SQLModel.metadata.create_all(conn, tables=[SALTS, ENTRIES])

    def placeholder_for(self, investigation_id: str, entity_type: str, original: str) -> str:
        """Return the placeholder of `original` in this investigation, allocating one if new."""
        digest = _digest(self._salt(investigation_id), entity_type, original)
        for _ in range(self._ATTEMPTS):
            with self._lock, Session(self._writer) as session:
                known = session.exec(select(RedactionEntry.placeholder).where(
                    RedactionEntry.investigation_id == investigation_id,
                    RedactionEntry.digest == digest)).first()
                if known is not None:
                    return known
                count = session.exec(select(func.count()).select_from(RedactionEntry).where(
                    RedactionEntry.investigation_id == investigation_id,
                    RedactionEntry.kind == entity_type)).one()
                name = placeholder(entity_type, count + 1)
                session.add(RedactionEntry(
                    investigation_id=investigation_id, kind=entity_type, placeholder=name,
                    digest=digest,
                    original=None if entity_type == SECRET_KIND else original))
                try:
                    session.commit()
                    return name
                except IntegrityError:
                    session.rollback()  # another worker took this value or number: look again
        raise RuntimeError(f"could not allocate a placeholder in {investigation_id}")

    def original_of(self, investigation_id: str, placeholder: str) -> str | None:
        """Return the original behind a placeholder, or None (unknown, or a secret)."""
        with Session(self.engine) as session:
            return session.exec(select(RedactionEntry.original).where(
                RedactionEntry.investigation_id == investigation_id,
                RedactionEntry.placeholder == placeholder)).first()

    def _salt(self, investigation_id: str) -> bytes:
        with self._lock:
            cached = self._salts.get(investigation_id)
            if cached is not None:
                return cached
            with Session(self._writer) as session:
                row = session.get(RedactionSalt, investigation_id)
                if row is None:
                    session.add(RedactionSalt(investigation_id=investigation_id,
                                              salt=secrets.token_hex(32)))
                    try:
                        session.commit()
                    except IntegrityError:
                        session.rollback()  # another worker created it first
                    row = session.get(RedactionSalt, investigation_id)
                if row is None:
                    raise RuntimeError(f"no salt for {investigation_id}")
                salt = self._pepper + bytes.fromhex(row.salt)
            self._salts[investigation_id] = salt
            return salt
