"""Database engines for governance state (audit log, approvals) on SQLite or PostgreSQL.

`make_engine` accepts ``sqlite:///path``, ``sqlite://`` (in memory) and ``postgresql://…``
(run through the psycopg 3 driver). SQLite engines emit their own ``BEGIN`` so that a
writer can ask for ``BEGIN IMMEDIATE`` with the execution option ``sqlite_begin``; the
stdlib driver's implicit transactions would otherwise start the write lock too late.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel

from core.errors import ConfigurationError

SQLITE_BUSY_TIMEOUT_S = 30.0
# one key for every process that creates tables, so concurrent `create_all` calls queue up
_DDL_LOCK_KEY = 0x5E_1E_07_A0


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL with sensible pool settings."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError, ValueError, ...
        raise ConfigurationError(f"invalid database URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(
            parsed,
            echo=echo,
            pool_size=5,
            max_overflow=10,
            pool_timeout=30,
            pool_recycle=1800,  # outlive idle-connection reapers in proxies and poolers
            pool_pre_ping=True,
        )
    if backend == "sqlite":
        return _sqlite_engine(url, in_memory=parsed.database in (None, "", ":memory:"), echo=echo)
    raise ConfigurationError(f"unsupported database {backend!r}: use sqlite:// or postgresql://")


def _sqlite_engine(url: str, *, in_memory: bool, echo: bool) -> Engine:
    connect_args: dict[str, Any] = {
        "check_same_thread": False,
        "timeout": SQLITE_BUSY_TIMEOUT_S,
    }
    if in_memory:
        # one shared connection, or every pooled connection would see its own empty database
        engine = create_engine(url, echo=echo, connect_args=connect_args, poolclass=StaticPool)
    else:
        engine = create_engine(url, echo=echo, connect_args=connect_args, pool_pre_ping=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # hand transaction control to SQLAlchemy's "begin" event below
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            if not in_memory:
                # readers do not block the writer, and the reverse
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = str(conn.get_execution_options().get("sqlite_begin", "")).upper()
        if mode not in ("", "DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            raise ConfigurationError(f"unknown sqlite_begin mode {mode!r}")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())

    return engine


def is_postgres(engine: Engine) -> bool:
    """Say whether the engine talks to PostgreSQL."""
    return engine.dialect.name == "postgresql"


def create_all(engine: Engine) -> None:
    """Create every governance table, the audit chain head and the PostgreSQL guards."""
    # imported here so that registering the tables never happens at `governance.db` import
    from governance import approvals_store, audit_store
    from governance.effectors import ledger

    del approvals_store, ledger  # imported for their tables

    # BEGIN IMMEDIATE on SQLite: two processes creating tables at once take turns
    with engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
        if is_postgres(engine):
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _DDL_LOCK_KEY})
        SQLModel.metadata.create_all(conn)
        audit_store.seed_head(conn)
        if is_postgres(engine):
            audit_store.install_guards(conn)
