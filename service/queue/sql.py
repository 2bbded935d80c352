"""The embedded queue: a job table in the service's own database, with leases.

A worker claims a job by setting its lease (`BEGIN IMMEDIATE` on SQLite, `FOR UPDATE
SKIP LOCKED` on PostgreSQL) and renews the lease while the handler runs. A worker that
dies stops renewing; once the lease runs out another worker takes the job. The row is
deleted only after the handler returned (acknowledgement after completion).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Index, text
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlmodel import Field, SQLModel

from core.telemetry import get_logger
from governance.approvals_store import UTCDateTime
from service.queue.base import DeadHandler, Handler, Job, JobQueue, QueueUnavailableError

log = get_logger("sleuth.queue")
POLL_S = 0.5


def _now() -> datetime:
    return datetime.now(UTC)


class QueuedJob(SQLModel, table=True):
    """A job waiting (todo), running (doing) or given up on (dead)."""

    __tablename__ = "jobs"
    __table_args__ = (
        # one waiting job per investigation and kind: enqueueing twice keeps one
        Index("uq_jobs_waiting", "queue", "investigation_id", "kind", unique=True,
              sqlite_where=text("status = 'todo'"), postgresql_where=text("status = 'todo'")),
        Index("ix_jobs_claim", "queue", "status", "available_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    queue: str = Field(max_length=40)
    kind: str = Field(max_length=16)
    investigation_id: str = Field(max_length=40)
    status: str = Field(default="todo", max_length=8)
    attempts: int = 0
    available_at: datetime = Field(sa_type=UTCDateTime)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    worker: str | None = Field(default=None, max_length=128)
    created_at: datetime = Field(sa_type=UTCDateTime)
    last_error: str | None = None


def create_tables(engine: Engine) -> None:
    """Create the job table when it does not exist yet."""
    SQLModel.metadata.create_all(engine, tables=[SQLModel.metadata.tables["jobs"]])


_CLAIM = (
    "UPDATE jobs SET status = 'doing', lease_until = :lease, worker = :w, "
    "attempts = attempts + 1 WHERE id = (SELECT id FROM jobs WHERE queue = :q AND "
    "((status = 'todo' AND available_at <= :now) OR (status = 'doing' AND lease_until < :now)) "
    "ORDER BY available_at, id LIMIT 1{lock}) RETURNING id, kind, investigation_id, attempts")
_CLAIM_SQLITE = text(_CLAIM.format(lock=""))
# two workers never take the same row; each skips rows another is taking
_CLAIM_PG = text(_CLAIM.format(lock=" FOR UPDATE SKIP LOCKED"))


def _forget(running: dict[int, asyncio.Task[None]], job_id: int, _task: object) -> None:
    running.pop(job_id, None)


def backoff(attempts: int) -> timedelta:
    """Return how long a failed job waits before its next try: 2, 4, 8 … 60 s."""
    return timedelta(seconds=min(2 ** attempts, 60))


class SqlJobQueue(JobQueue):
    """Jobs in a table of the service's database (SQLite by default)."""

    def __init__(self, engine: Engine, *, name: str = "investigations", lease_s: float = 60,
                 max_attempts: int = 5, poll_s: float = POLL_S) -> None:
        self.engine = engine
        self.name = name
        self.lease = timedelta(seconds=lease_s)
        self.max_attempts = max_attempts
        self.poll_s = poll_s
        self._postgres = engine.dialect.name == "postgresql"
        # wakes this process's workers at once when this process enqueues; the API and the
        # embedded workers run on different threads and loops, so it is set thread-safely
        self._wake: asyncio.Event | None = None
        self._wake_loop: asyncio.AbstractEventLoop | None = None

    async def setup(self) -> None:
        """Create the job table."""
        await asyncio.to_thread(create_tables, self.engine)

    # -- producing -------------------------------------------------------------------

    def insert_in(self, conn: Connection, job: Job) -> None:
        """Add a job inside the caller's transaction on this queue's database."""
        now = _now()
        conn.execute(text(
            "INSERT INTO jobs (queue, kind, investigation_id, status, attempts, "
            "available_at, created_at) VALUES (:q, :k, :i, 'todo', 0, :now, :now)"),
            {"q": self.name, "k": job.kind, "i": job.investigation_id, "now": now})

    def _insert(self, job: Job) -> None:
        now = _now()
        try:
            with self.engine.begin() as conn:
                conn.execute(text(
                    "INSERT INTO jobs (queue, kind, investigation_id, status, attempts, "
                    "available_at, created_at) VALUES (:q, :k, :i, 'todo', 0, :now, :now)"),
                    {"q": self.name, "k": job.kind, "i": job.investigation_id, "now": now})
        except IntegrityError:
            return  # the same job already waits
        except OperationalError as exc:
            raise QueueUnavailableError(f"cannot enqueue: {exc.orig}") from None

    async def enqueue(self, job: Job) -> None:
        """Insert the job unless the same one already waits."""
        await asyncio.to_thread(self._insert, job)
        self.wake()

    def wake(self) -> None:
        """Wake this queue's idle workers now; safe from any thread or event loop."""
        wake, loop = self._wake, self._wake_loop
        if wake is not None and loop is not None:
            with contextlib.suppress(RuntimeError):  # the workers' loop has closed
                loop.call_soon_threadsafe(wake.set)

    def _depth(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text(
                "SELECT count(*) FROM jobs WHERE queue = :q AND status IN ('todo', 'doing')"),
                {"q": self.name}).scalar_one())

    async def depth(self) -> int:
        """Count waiting and running jobs."""
        try:
            return await asyncio.to_thread(self._depth)
        except SQLAlchemyError as exc:
            raise QueueUnavailableError(f"cannot read the queue: {exc}") from None

    async def check(self) -> None:
        """Read the job table."""
        await self.depth()

    # -- consuming -------------------------------------------------------------------

    def _claim(self, worker: str) -> tuple[Job, int] | None:
        now = _now()
        sql = _CLAIM_PG if self._postgres else _CLAIM_SQLITE
        with self.engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
            row = conn.execute(sql, {"lease": now + self.lease, "w": worker, "q": self.name,
                                     "now": now}).first()
        if row is None:
            return None
        return Job(kind=row.kind, investigation_id=row.investigation_id,
                   attempt=int(row.attempts)), int(row.id)

    def _execute(self, sql: str, **params: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(sql), params)

    def _retry_later(self, job_id: int, error: str, at: datetime) -> None:
        try:
            self._execute("UPDATE jobs SET status = 'todo', available_at = :at, "
                          "lease_until = NULL, last_error = :e WHERE id = :id",
                          at=at, e=error, id=job_id)
        except IntegrityError:
            # the same job was enqueued while this one ran and waits: it does the work
            self._execute("DELETE FROM jobs WHERE id = :id", id=job_id)

    def _renew(self, ids: list[int]) -> None:
        if not ids:
            return
        with self.engine.begin() as conn:
            for job_id in ids:
                conn.execute(text("UPDATE jobs SET lease_until = :lease WHERE id = :id "
                                  "AND status = 'doing'"),
                             {"lease": _now() + self.lease, "id": job_id})

    async def run(self, handler: Handler, *, concurrency: int, stop: asyncio.Event,
                  on_dead: DeadHandler | None = None, worker_name: str = "worker") -> None:
        """Claim and run jobs until `stop` is set; wait for running ones to finish."""
        self._wake = asyncio.Event()
        self._wake_loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(concurrency)
        running: dict[int, asyncio.Task[None]] = {}
        renewer = asyncio.create_task(self._renew_loop(running, stop))
        try:
            while not stop.is_set():
                await slots.acquire()
                try:
                    claimed = await asyncio.to_thread(self._claim, worker_name)
                except SQLAlchemyError as exc:
                    slots.release()
                    log.warning("queue_claim_failed", error=str(exc)[:300])
                    await self._sleep(stop, self.poll_s * 4)
                    continue
                if claimed is None:
                    slots.release()
                    await self._idle(stop)
                    continue
                job, job_id = claimed
                task = asyncio.create_task(self._one(handler, on_dead, job, job_id, slots))
                running[job_id] = task
                task.add_done_callback(functools.partial(_forget, running, job_id))
        finally:
            if running:
                await asyncio.gather(*running.values(), return_exceptions=True)
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _one(self, handler: Handler, on_dead: DeadHandler | None, job: Job, job_id: int,
                   slots: asyncio.Semaphore) -> None:
        try:
            if job.attempt > self.max_attempts:
                await self._dead(on_dead, job, job_id, "lease lost too often: worker crashes")
                return
            try:
                await handler(job)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:2000]
                if job.attempt >= self.max_attempts:
                    await self._dead(on_dead, job, job_id, error)
                else:
                    log.warning("job_failed_will_retry", investigation_id=job.investigation_id,
                                attempt=job.attempt, error=error[:300])
                    await asyncio.to_thread(self._retry_later, job_id, error,
                                            _now() + backoff(job.attempt))
                return
            await asyncio.to_thread(self._execute, "DELETE FROM jobs WHERE id = :id", id=job_id)
        finally:
            slots.release()

    async def _dead(self, on_dead: DeadHandler | None, job: Job, job_id: int,
                    error: str) -> None:
        log.error("job_dead", investigation_id=job.investigation_id, kind=job.kind,
                  attempts=job.attempt, error=error[:300])
        if on_dead is not None:
            await on_dead(job, error)
        await asyncio.to_thread(
            self._execute, "UPDATE jobs SET status = 'dead', lease_until = NULL, "
            "last_error = :e WHERE id = :id", e=error, id=job_id)

    async def _renew_loop(self, running: dict[int, asyncio.Task[None]],
                          stop: asyncio.Event) -> None:
        interval = max(self.lease.total_seconds() / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self._renew, list(running))
            except SQLAlchemyError as exc:
                log.warning("queue_lease_renew_failed", error=str(exc)[:300])

    async def _idle(self, stop: asyncio.Event) -> None:
        assert self._wake is not None
        self._wake.clear()
        waiters = [asyncio.create_task(self._wake.wait()), asyncio.create_task(stop.wait())]
        _, pending = await asyncio.wait(waiters, timeout=self.poll_s,
                                        return_when=asyncio.FIRST_COMPLETED)
        for waiter in pending:
            waiter.cancel()

    @staticmethod
    async def _sleep(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    def dead_jobs(self) -> list[dict[str, Any]]:
        """Return the jobs given up on, for operators."""
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, kind, investigation_id, attempts, last_error "
                                     "FROM jobs WHERE queue = :q AND status = 'dead'"),
                                {"q": self.name})
            return [dict(r._mapping) for r in rows]
