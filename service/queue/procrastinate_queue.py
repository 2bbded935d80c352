"""The scale-out queue: procrastinate on PostgreSQL, consumed by `sleuth worker` processes.

One procrastinate task, `sleuth.job`, carries a `Job` (kind and investigation id).
Delivery is at least once: procrastinate marks a job succeeded only after the task
returned. Workers heartbeat (from a thread, `heartbeat.py`, so a busy event loop does
not pass for a dead worker); a worker silent for `stalled_after_s` (killed, wedged, cut
off) has its jobs put back by whichever worker notices first (`recover_stalled`, one
guarded UPDATE, so two workers racing cannot both requeue a job, nor requeue one a
live worker has taken since). A handler that raises is retried with backoff up to
`max_attempts`, a crash counting as an attempt; then `on_dead` is called and the job
ends `failed`, kept in `procrastinate_jobs` for operators.

Jobs are keyed by a queueing lock (one waiting job per queue, kind and investigation)
and locked by investigation id (two jobs of one investigation never run at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
from procrastinate import App, PsycopgConnector
from procrastinate import exceptions as pexc
from procrastinate.job_context import JobContext
from procrastinate.jobs import Job as ProcrastinateJob
from procrastinate.manager import get_channel_for_queues
from procrastinate.retry import BaseRetryStrategy, RetryDecision
from procrastinate.schema import SchemaManager
from procrastinate.worker import Worker
from psycopg_pool import AsyncConnectionPool

from core.telemetry import get_logger
from service.queue.base import (
    DeadHandler,
    Handler,
    Job,
    JobKind,
    JobQueue,
    QueueUnavailableError,
)
from service.queue.heartbeat import ThreadHeartbeat
from service.queue.sql import backoff

log = get_logger("sleuth.queue")
TASK = "sleuth.job"
# one key for every process applying procrastinate's schema, so they take turns
_SCHEMA_LOCK_KEY = 0x5E_1E_07_A1

_DEPTH = ("SELECT count(*) AS n FROM procrastinate_jobs "
          "WHERE queue_name = %(queue)s AND status IN ('todo', 'doing')")
_TWIN_WAITS = ("SELECT count(*) AS n FROM procrastinate_jobs "
               "WHERE queueing_lock = %(lock)s AND status = 'todo'")
# Jobs of silent workers go back to `todo` (an attempt used up). SKIP LOCKED plus the
# re-checked WHERE make concurrent recoveries by several workers take each job once; a
# job whose twin already waits (same queueing lock) is aborted instead, since the
# unique index allows one waiting job per lock and the twin does the same work.
_RECOVER = """
WITH stalled AS (
    SELECT job.id, job.queueing_lock FROM procrastinate_jobs AS job
     WHERE job.queue_name = %(queue)s AND job.status = 'doing'
       AND (job.worker_id IS NULL OR job.worker_id IN (
            SELECT w.id FROM procrastinate_workers AS w
             WHERE w.last_heartbeat < NOW() - make_interval(secs => %(seconds)s)))
     FOR UPDATE OF job SKIP LOCKED
)
UPDATE procrastinate_jobs AS job
   SET status = CASE WHEN stalled.queueing_lock IS NOT NULL AND (
              EXISTS (SELECT 1 FROM procrastinate_jobs AS twin
                       WHERE twin.queueing_lock = stalled.queueing_lock
                         AND twin.status = 'todo')
              OR EXISTS (SELECT 1 FROM stalled AS other
                          WHERE other.queueing_lock = stalled.queueing_lock
                            AND other.id < stalled.id))
            THEN 'aborted'::procrastinate_job_status
            ELSE 'todo'::procrastinate_job_status END,
       attempts = job.attempts + 1, scheduled_at = NOW(), worker_id = NULL
  FROM stalled
 WHERE job.id = stalled.id
RETURNING job.id, job.status::text AS status, job.args, job.attempts
"""


class _DeadJobError(Exception):
    """The job ran out of attempts; `on_dead` has been called."""


class _Backoff(BaseRetryStrategy):
    """Retry a failed job after 2, 4, 8 … 60 s until it has had `max_attempts` tries."""

    def __init__(self, max_attempts: int) -> None:
        self.max_attempts = max_attempts

    def get_retry_decision(self, *, exception: BaseException,
                           job: ProcrastinateJob) -> RetryDecision | None:
        """Return when to try again, or None when the job is done trying."""
        attempt = job.attempts + 1  # procrastinate counts earlier tries only
        if isinstance(exception, _DeadJobError) or attempt >= self.max_attempts:
            return None
        return RetryDecision(retry_at=datetime.now(UTC) + backoff(attempt))


def _conninfo(url: str) -> str:
    """Return a libpq URL from a SQLAlchemy-style one (`postgresql+psycopg://`)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


class ProcrastinateJobQueue(JobQueue):
    """Jobs in procrastinate's tables on PostgreSQL, for workers in other processes."""

    def __init__(self, url: str, *, name: str = "investigations", max_attempts: int = 5,
                 heartbeat_s: float = 2, stalled_after_s: float = 10,
                 connect_timeout_s: float = 5, pool_size: int = 8,
                 loop_silence_s: float = 60) -> None:
        self.conninfo = _conninfo(url)
        self.name = name
        self.max_attempts = max_attempts
        self.heartbeat_s = heartbeat_s
        self.stalled_after_s = stalled_after_s
        self.connect_timeout_s = connect_timeout_s
        self.pool_size = pool_size
        # a worker whose event loop has not answered for this long stops heartbeating
        self.loop_silence_s = max(loop_silence_s, stalled_after_s)
        self.connector = PsycopgConnector(
            conninfo=self.conninfo, min_size=1, max_size=pool_size,
            timeout=connect_timeout_s, kwargs={"connect_timeout": max(1, round(connect_timeout_s))})
        self.app = App(connector=self.connector)
        self.app.task(name=TASK, queue=name, pass_context=True,
                      retry=_Backoff(max_attempts))(self._run_job)
        self._open_pool: AsyncConnectionPool | None = None
        self._opening = asyncio.Lock()
        self._handler: Handler | None = None
        self._on_dead: DeadHandler | None = None

    # -- connections -----------------------------------------------------------------

    @contextlib.contextmanager
    def _unavailable(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (pexc.ConnectorException, psycopg.Error, OSError) as exc:
            cause = exc.__cause__ or exc
            raise QueueUnavailableError(f"{doing}: {type(cause).__name__}: {cause}") from None

    async def _open(self) -> AsyncConnectionPool:
        async with self._opening:
            if self._open_pool is not None:
                return self._open_pool
            try:
                # the pool would wait 30 s for a server that is not there
                async with asyncio.timeout(self.connect_timeout_s):
                    with self._unavailable("cannot reach the queue's PostgreSQL"):
                        await self.app.open_async()
            except (QueueUnavailableError, TimeoutError) as exc:
                await self.connector.close_async()  # a half-open pool stops retrying
                if isinstance(exc, TimeoutError):
                    raise QueueUnavailableError(
                        f"cannot reach the queue's PostgreSQL within "
                        f"{self.connect_timeout_s:g} s") from None
                raise
            self._open_pool = self.connector.pool
            return self._open_pool

    async def _one(self, query: str, **params: Any) -> dict[str, Any]:
        await self._open()
        row: dict[str, Any] = await self.connector.execute_query_one_async(
            cast(Any, query), **params)
        return row

    async def aclose(self) -> None:
        """Close the connection pool."""
        async with self._opening:
            if self._open_pool is not None:
                self._open_pool = None
                await self.connector.close_async()

    # -- set-up and health -----------------------------------------------------------

    async def setup(self) -> None:
        """Apply procrastinate's schema unless present; safe when workers start together."""
        pool = await self._open()
        with self._unavailable("cannot set up the queue"):
            async with pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
                # to_regclass follows search_path, so a schema given in the URL gets its own
                row = await (await conn.execute(
                    "SELECT to_regclass('procrastinate_jobs') IS NOT NULL")).fetchone()
                if not (row and row[0]):
                    await conn.execute(SchemaManager.get_schema())
                    log.info("queue_schema_applied", queue=self.name)

    async def depth(self) -> int:
        """Count jobs waiting or running in this queue."""
        with self._unavailable("cannot read the queue"):
            return int((await self._one(_DEPTH, queue=self.name))["n"])

    async def check(self) -> None:
        """Raise `QueueUnavailableError` unless PostgreSQL answers and the schema is there."""
        with self._unavailable("cannot reach the queue"):
            found = await self._one("SELECT to_regclass('procrastinate_jobs') AS t")
        if found["t"] is None:
            raise QueueUnavailableError("the queue's tables are missing: run a worker "
                                        "(it applies the schema) or `setup()`")

    # -- producing -------------------------------------------------------------------

    def _queueing_lock(self, kind: str, investigation_id: str) -> str:
        return f"{self.name}:{kind}:{investigation_id}"

    async def enqueue(self, job: Job) -> None:
        """Defer the job unless the same one already waits."""
        await self._open()
        deferrer = self.app.configure_task(
            TASK, queue=self.name, lock=job.investigation_id,
            queueing_lock=self._queueing_lock(job.kind, job.investigation_id))
        with self._unavailable("cannot enqueue"):
            try:
                await deferrer.defer_async(kind=job.kind, investigation_id=job.investigation_id)
            except pexc.AlreadyEnqueued:
                return  # the same job already waits

    # -- consuming -------------------------------------------------------------------

    async def _run_job(self, context: JobContext, kind: str, investigation_id: str) -> None:
        """Run the handler on one job (the body of the procrastinate task)."""
        if self._handler is None:  # deferred jobs only run inside `run`
            raise RuntimeError("no handler: jobs run inside ProcrastinateJobQueue.run")
        job = Job(kind=cast(JobKind, kind), investigation_id=investigation_id,
                  attempt=context.job.attempts + 1)
        if job.attempt > self.max_attempts:
            await self._dead(job, "taken over too often: workers died while running it")
            raise _DeadJobError(job.investigation_id)
        try:
            await self._handler(job)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:2000]
            if job.attempt >= self.max_attempts:
                await self._dead(job, error)
                raise _DeadJobError(error) from exc
            if await self._twin_waits(job):
                # procrastinate cannot put this one back next to its waiting twin
                raise pexc.JobAborted("superseded by the same job waiting") from exc
            log.warning("job_failed_will_retry", investigation_id=job.investigation_id,
                        kind=job.kind, attempt=job.attempt, error=error[:300])
            raise

    async def _twin_waits(self, job: Job) -> bool:
        lock = self._queueing_lock(job.kind, job.investigation_id)
        try:
            with self._unavailable("cannot look for a waiting twin"):
                return int((await self._one(_TWIN_WAITS, lock=lock))["n"]) > 0
        except QueueUnavailableError:
            return False  # let procrastinate retry; it reports what goes wrong

    async def _dead(self, job: Job, error: str) -> None:
        log.error("job_dead", investigation_id=job.investigation_id, kind=job.kind,
                  attempts=job.attempt, error=error[:300])
        if self._on_dead is not None:
            await self._on_dead(job, error)

    async def recover_stalled(self) -> int:
        """Put back the running jobs of workers silent for `stalled_after_s`; return how many."""
        pool = await self._open()
        with self._unavailable("cannot recover stalled jobs"):
            async with pool.connection() as conn:
                cur = await conn.execute(_RECOVER, {"queue": self.name,
                                                    "seconds": self.stalled_after_s})
                rows = await cur.fetchall()
                if any(status == "todo" for _, status, _, _ in rows):
                    for channel in get_channel_for_queues([self.name]):
                        # wake idle workers now rather than at their next poll
                        await conn.execute("SELECT pg_notify(%s, %s)", (channel, json.dumps(
                            {"type": "job_inserted", "job_id": None})))
                await conn.commit()
        for job_id, status, args, attempts in rows:
            log.warning("job_recovered_from_stalled_worker", job_id=job_id, status=status,
                        investigation_id=(args or {}).get("investigation_id"),
                        attempts=attempts)
        return len(rows)

    async def _recover_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.recover_stalled()
                await self.app.job_manager.prune_stalled_workers(self.stalled_after_s)
            except Exception as exc:  # the recovery must outlive any one failure
                log.warning("queue_recovery_failed",
                            error=f"{type(exc).__name__}: {exc}"[:300])
            await _sleep(stop, self.heartbeat_s)

    async def run(self, handler: Handler, *, concurrency: int, stop: asyncio.Event,
                  on_dead: DeadHandler | None = None, worker_name: str = "worker") -> None:
        """Run a procrastinate worker until `stop` is set; running jobs finish first."""
        await self._open()
        self._handler, self._on_dead = handler, on_dead
        recovery = asyncio.create_task(self._recover_loop(stop))
        try:
            while not stop.is_set():
                await self._run_worker(concurrency, stop, worker_name)
                if not stop.is_set():
                    # the worker stopped by itself (its database went away): start again
                    await _sleep(stop, self.heartbeat_s)
        finally:
            recovery.cancel()
            await asyncio.gather(recovery, return_exceptions=True)
            self._handler = self._on_dead = None

    async def _run_worker(self, concurrency: int, stop: asyncio.Event, name: str) -> None:
        worker = Worker(
            app=self.app, queues=[self.name], name=name, concurrency=concurrency, wait=True,
            install_signal_handlers=False, listen_notify=True, delete_jobs="successful",
            fetch_job_polling_interval=self.heartbeat_s,
            abort_job_polling_interval=max(self.heartbeat_s, 5.0),
            update_heartbeat_interval=self.heartbeat_s,
            stalled_worker_timeout=self.stalled_after_s)
        heartbeat = ThreadHeartbeat(worker, self.conninfo, interval_s=self.heartbeat_s,
                                    loop_silence_s=self.loop_silence_s,
                                    connect_timeout_s=self.connect_timeout_s)
        heartbeat.start()
        watch = asyncio.create_task(heartbeat.watch_loop())
        running = asyncio.create_task(worker.run())  # type: ignore[no-untyped-call]
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            worker.stop()  # type: ignore[no-untyped-call]  # graceful: running jobs finish
            await asyncio.wait({running})
            watch.cancel()
            await asyncio.to_thread(heartbeat.stop)
        failure = None if running.cancelled() else running.exception()
        if failure is not None:
            log.warning("queue_worker_failed", error=f"{type(failure).__name__}: {failure}"[:300])


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
