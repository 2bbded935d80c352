"""A worker: the queue's consumer loop plus the housekeeping every worker shares.

`run_worker` is what `sleuth worker` runs (scale-out) and what `sleuth serve` runs in
its own thread (embedded). Besides taking jobs it re-enqueues accepted tickets whose
enqueue was lost to a crash, and expires overdue approvals so that their investigations
resume and escalate. Both chores are idempotent, so every worker may run them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta

import psycopg

from agent.checkpoint import open_checkpointer
from agent.factory import checkpoint_target
from core.settings import Settings
from core.telemetry import get_logger
from service.context import ServiceContext
from service.jobs import InvestigationJobs
from service.worlds import Worlds, build_worlds

log = get_logger("sleuth.worker")
REQUEUE_EVERY_S = 5.0
EXPIRE_EVERY_S = 30.0
RESUME_SWEEP_EVERY_S = 60.0
# one key for every worker creating the checkpoint tables, so they take turns
_CHECKPOINT_LOCK_KEY = 0x5E_1E_07_A2


def worker_name(prefix: str = "worker") -> str:
    """Return a name unique to this process: prefix, host and pid."""
    return f"{prefix}@{socket.gethostname()}:{os.getpid()}"


async def _every(seconds: float, stop: asyncio.Event, chore: Callable[[], Awaitable[int]],
                 name: str) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        if stop.is_set():
            return
        try:
            done = await chore()
            if done:
                log.info("worker_chore", chore=name, count=done)
        except Exception as exc:  # a chore must never stop the worker
            log.warning("worker_chore_failed", chore=name, error=f"{type(exc).__name__}: {exc}")


async def prepare_checkpoints(settings: Settings) -> None:
    """Create the PostgreSQL checkpoint tables once, workers starting together taking turns."""
    target = checkpoint_target(settings)
    if not target.startswith(("postgresql://", "postgres://")):
        return  # SQLite: one process per file, created when opened
    # langgraph's setup() reads the migration version, then migrates: two workers doing it
    # at once both insert the same version and one fails
    async with await psycopg.AsyncConnection.connect(target, autocommit=True) as conn:
        # try, don't block: a statement blocked on the lock holds a snapshot, and langgraph's
        # migrations build indexes CONCURRENTLY, which wait for every older snapshot
        while True:
            cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)",
                                        (_CHECKPOINT_LOCK_KEY,))
            row = await cursor.fetchone()
            if row is not None and row[0]:
                break
            await asyncio.sleep(0.2)
        try:
            async with open_checkpointer(target):
                pass
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_CHECKPOINT_LOCK_KEY,))


async def run_worker(ctx: ServiceContext, stop: asyncio.Event, *,
                     worlds: Worlds | None = None, concurrency: int | None = None,
                     name: str | None = None,
                     requeue_after: timedelta = timedelta(seconds=10)) -> None:
    """Take jobs from the context's queue until `stop` is set; then close the worlds."""
    owned = worlds is None
    worlds = worlds or build_worlds(ctx.settings, ctx.metrics)
    name = name or worker_name()
    jobs = InvestigationJobs(ctx.store, worlds, worker=name, metrics=ctx.metrics)
    chores = [
        asyncio.create_task(_every(REQUEUE_EVERY_S, stop,
                                   lambda: ctx.requeue_unenqueued(requeue_after), "requeue")),
        asyncio.create_task(_every(EXPIRE_EVERY_S, stop, ctx.expire_due, "expire_approvals")),
        asyncio.create_task(_every(RESUME_SWEEP_EVERY_S, stop, ctx.resume_settled,
                                   "resume_settled")),
    ]
    log.info("worker_started", worker=name, queue=ctx.settings.queue.backend,
             concurrency=concurrency or ctx.settings.queue.concurrency)
    try:
        await ctx.queue.setup()
        await prepare_checkpoints(ctx.settings)
        await ctx.queue.run(jobs.handle, concurrency=concurrency or ctx.settings.queue.concurrency,
                            stop=stop, on_dead=jobs.dead, worker_name=name)
    finally:
        stop.set()
        await asyncio.gather(*chores, return_exceptions=True)
        if owned:
            await worlds.aclose()
        log.info("worker_stopped", worker=name)
