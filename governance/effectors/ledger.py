"""The effector ledger: which idempotency keys were started, done or failed, and their results.

A row is claimed (`started`) before an effector writes and finished (`done` or
`failed`) after. A `done` row is final: its recorded result is what every later
execution of the same key answers, and nothing is sent again. A `started` row
means a run crashed or is still running; a new run claims it again and relies
on the outside system's own idempotency (each effector hands it the key), which
is what makes the window between "the outside system acted" and "the ledger
knows" safe. The table lives in the governance database (SQLite or PostgreSQL).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import JSON, DateTime, Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from governance.effectors.base import EffectResult

LedgerStatus = Literal["started", "done", "failed"]


def _now() -> datetime:
    return datetime.now(UTC)


class EffectorLedgerRow(SQLModel, table=True):
    """One idempotency key and what became of it."""

    __tablename__ = "effector_ledger"

    key: str = Field(primary_key=True, max_length=64)
    action_type: str = Field(max_length=64)
    investigation_id: str = Field(max_length=128, index=True)
    status: str = Field(max_length=16, description="started | done | failed")
    claims: int = Field(default=1,
                        description="how many runs claimed the key (more than 1: a resume)")
    external_id: str | None = Field(default=None, max_length=512)
    result: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    created_at: datetime = Field(default_factory=_now, sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=_now, sa_type=DateTime(timezone=True))


def create_ledger_table(engine: Engine) -> None:
    """Create the ledger table when it is missing (`governance.db.create_all` also does)."""
    SQLModel.metadata.create_all(engine, tables=[EffectorLedgerRow.__table__])  # type: ignore[attr-defined]


class Ledger:
    """Claims and records idempotency keys in the governance database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # SQLite: take the write lock when the transaction starts (governance.db's
        # `sqlite_begin`), or two claims that both read first deadlock on the upgrade
        self._writer = (engine.execution_options(sqlite_begin="IMMEDIATE")
                        if engine.dialect.name == "sqlite" else engine)

    def begin(self, key: str, *, action_type: str,
              investigation_id: str) -> EffectResult | None:
        """Claim `key`; return the recorded result when it is already done, else None."""
        with Session(self._writer) as session:
            row = session.get(EffectorLedgerRow, key)
            if row is None:
                session.add(EffectorLedgerRow(key=key, action_type=action_type,
                                              investigation_id=investigation_id,
                                              status="started"))
                try:
                    session.commit()
                    return None
                except IntegrityError:  # another run inserted it first
                    session.rollback()
                    row = session.get(EffectorLedgerRow, key)
            if row is not None and row.status == "done":
                return _result(row)
            # started (a crash or a concurrent run) or failed: claim it again; a `done` row
            # is never taken back, which the WHERE clause enforces against races
            claimed = session.execute(
                update(EffectorLedgerRow)
                .where(col(EffectorLedgerRow.key) == key,
                       col(EffectorLedgerRow.status) != "done")
                .values(status="started", claims=col(EffectorLedgerRow.claims) + 1,
                        updated_at=_now()))
            session.commit()
            if claimed.rowcount == 0:  # type: ignore[attr-defined]
                session.expire_all()
                row = session.get(EffectorLedgerRow, key)
                return _result(row) if row is not None else None
            return None

    def finish(self, key: str, result: EffectResult) -> None:
        """Record the outcome of a run; a `done` key stays done."""
        status: LedgerStatus = "failed" if result.status == "failed" else "done"
        with Session(self._writer) as session:
            session.execute(
                update(EffectorLedgerRow)
                .where(col(EffectorLedgerRow.key) == key,
                       col(EffectorLedgerRow.status) != "done")
                .values(status=status, external_id=result.external_id,
                        result=result.model_dump(mode="json"), updated_at=_now()))
            session.commit()

    def get(self, key: str) -> EffectorLedgerRow | None:
        """Return the row of `key`, if any."""
        with Session(self.engine) as session:
            return session.get(EffectorLedgerRow, key)

    def for_investigation(self, investigation_id: str) -> list[EffectorLedgerRow]:
        """Return the rows of one investigation, oldest first."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(EffectorLedgerRow)
                .where(col(EffectorLedgerRow.investigation_id) == investigation_id)
                .order_by(col(EffectorLedgerRow.created_at)))
            return list(rows)


def _result(row: EffectorLedgerRow) -> EffectResult | None:
    if row.status != "done" or row.result is None:
        return None
    return EffectResult.model_validate(row.result)
