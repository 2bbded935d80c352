"""One contract for every job queue: the embedded SQL queue (SQLite, PostgreSQL), procrastinate.

Each backend runs the same tests: jobs kept once while waiting, acknowledged only after
their handler returned, retried with backoff and then given up on (`on_dead` once),
`concurrency` honoured, a graceful stop, a job of a vanished worker taken again, and
`QueueUnavailableError` when the server cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from governance.db import make_engine
from service.queue import procrastinate_queue, sql
from service.queue.base import Handler, Job, JobQueue, QueueUnavailableError
from service.queue.procrastinate_queue import ProcrastinateJobQueue
from service.queue.sql import SqlJobQueue
from tests.conftest import postgres_schema

MAX_ATTEMPTS = 3
DEADLINE_S = 10.0


@dataclass
class Backend:
    """A queue under test and what the contract needs to know about it."""

    queue: JobQueue
    # make the next waiting job look taken by a worker that then vanished
    abandon: Callable[[], Awaitable[None]]
    # a queue of the same kind on a server that cannot be reached
    unreachable: Callable[[], JobQueue]


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """Yield a URL whose search_path is a fresh PostgreSQL schema, dropped afterwards."""
    with postgres_schema(postgres_url, "queue_test") as url:
        yield url


def _sql_backend(url: str, unreachable_url: str) -> Backend:
    engine = make_engine(url)
    queue = SqlJobQueue(engine, lease_s=1, max_attempts=MAX_ATTEMPTS, poll_s=0.1)

    async def abandon() -> None:
        # claimed with a lease that nobody renews: what a killed worker leaves behind
        assert await asyncio.to_thread(queue._claim, "ghost") is not None

    return Backend(queue, abandon, lambda: SqlJobQueue(make_engine(unreachable_url)))


def _procrastinate_backend(url: str) -> Backend:
    queue = ProcrastinateJobQueue(url, max_attempts=MAX_ATTEMPTS, heartbeat_s=0.3,
                                  stalled_after_s=1)

    async def abandon() -> None:
        # a registered worker that fetches a job and never sends a heartbeat again
        manager = queue.app.job_manager
        worker_id = await manager.register_worker()
        assert await manager.fetch_job(queues=[queue.name], worker_id=worker_id) is not None

    return Backend(queue, abandon, lambda: ProcrastinateJobQueue(
        "postgresql://postgres@127.0.0.1:1/test", connect_timeout_s=1))


@pytest.fixture(params=[
    "sql-sqlite",
    pytest.param("sql-postgres", marks=pytest.mark.postgres),
    pytest.param("procrastinate", marks=pytest.mark.postgres),
])
async def backend(request: pytest.FixtureRequest, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Backend]:
    """Yield a set-up queue of each implementation, with short retry waits."""
    def short(attempt: int) -> timedelta:
        return timedelta(seconds=0.1)

    monkeypatch.setattr(sql, "backoff", short)
    monkeypatch.setattr(procrastinate_queue, "backoff", short)
    if request.param == "sql-sqlite":
        made = _sql_backend(f"sqlite:///{tmp_path / 'jobs.db'}",
                            f"sqlite:///{tmp_path / 'missing' / 'jobs.db'}")
    else:
        url: str = request.getfixturevalue("pg_schema_url")
        made = (_sql_backend(url, "postgresql://postgres@127.0.0.1:1/test")
                if request.param == "sql-postgres" else _procrastinate_backend(url))
    await made.queue.setup()
    yield made
    await made.queue.aclose()
    if isinstance(made.queue, SqlJobQueue):
        made.queue.engine.dispose()


async def run_until(queue: JobQueue, handler: Handler, done: asyncio.Event, *,
                    concurrency: int = 2, on_dead: Callable[[Job, str], Awaitable[None]]
                    | None = None, after: Callable[[], Awaitable[None]] | None = None) -> float:
    """Run a worker until `done` is set (or the deadline passes); return the seconds taken."""
    stop = asyncio.Event()
    started = time.monotonic()
    worker = asyncio.create_task(queue.run(handler, concurrency=concurrency, stop=stop,
                                           on_dead=on_dead, worker_name="contract"))
    try:
        if after is not None:
            await after()
        with contextlib.suppress(TimeoutError):  # the test's assertions say what is missing
            await asyncio.wait_for(done.wait(), DEADLINE_S)
        return time.monotonic() - started
    finally:
        stop.set()
        await asyncio.wait_for(worker, DEADLINE_S)


async def test_enqueue_counts_jobs_and_keeps_a_waiting_job_once(backend: Backend) -> None:
    queue = backend.queue
    assert await queue.depth() == 0
    await queue.enqueue(Job("investigate", "inv_a"))
    await queue.enqueue(Job("investigate", "inv_a"))
    await queue.enqueue(Job("resume", "inv_a"))
    await queue.enqueue(Job("investigate", "inv_b"))
    assert await queue.depth() == 3
    await queue.check()


async def test_each_job_runs_once_and_is_acknowledged_after_its_handler(
        backend: Backend) -> None:
    queue = backend.queue
    ran: list[Job] = []
    depth_while_running: list[int] = []
    done = asyncio.Event()

    async def handler(job: Job) -> None:
        depth_while_running.append(await queue.depth())
        await asyncio.sleep(0.05)
        ran.append(job)
        if len(ran) >= 5:
            done.set()

    for i in range(3):
        await queue.enqueue(Job("investigate", f"inv_{i}"))

    async def more() -> None:  # jobs enqueued while the worker runs are taken too
        for i in range(3, 5):
            await queue.enqueue(Job("investigate", f"inv_{i}"))

    await run_until(queue, handler, done, after=more)
    await asyncio.sleep(0.3)  # nothing runs twice
    assert sorted(j.investigation_id for j in ran) == [f"inv_{i}" for i in range(5)]
    assert all(j.attempt == 1 for j in ran)
    # a running job still counts: it is acknowledged only when its handler has returned
    assert min(depth_while_running) >= 1
    assert await queue.depth() == 0


async def test_a_failing_job_is_retried_then_given_up_on_once(backend: Backend) -> None:
    queue = backend.queue
    attempts: list[int] = []
    dead: list[tuple[Job, str]] = []

    async def handler(job: Job) -> None:
        attempts.append(job.attempt)
        raise RuntimeError(f"broken on attempt {job.attempt}")

    done = asyncio.Event()

    async def on_dead(job: Job, error: str) -> None:
        dead.append((job, error))
        done.set()

    await queue.enqueue(Job("investigate", "inv_fail"))
    await run_until(queue, handler, done, on_dead=on_dead)
    await asyncio.sleep(0.4)  # no further attempt, no second burial
    assert attempts == [1, 2, 3]
    assert len(dead) == 1
    job, error = dead[0]
    assert (job.investigation_id, job.attempt) == ("inv_fail", MAX_ATTEMPTS)
    assert "broken on attempt 3" in error
    assert await queue.depth() == 0


async def test_concurrency_is_honoured(backend: Backend) -> None:
    queue = backend.queue
    running = 0
    peak = 0
    finished: list[str] = []
    done = asyncio.Event()

    async def handler(job: Job) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.3)
        running -= 1
        finished.append(job.investigation_id)
        if len(finished) == 7:
            done.set()

    for i in range(7):
        await queue.enqueue(Job("investigate", f"inv_{i}"))
    await run_until(queue, handler, done, concurrency=3)
    assert len(finished) == 7
    assert peak == 3


async def test_stop_lets_the_running_job_finish(backend: Backend) -> None:
    queue = backend.queue
    started = asyncio.Event()
    finished: list[str] = []

    async def handler(job: Job) -> None:
        started.set()
        await asyncio.sleep(0.5)
        finished.append(job.investigation_id)

    await queue.enqueue(Job("investigate", "inv_slow"))
    stop = asyncio.Event()
    worker = asyncio.create_task(queue.run(handler, concurrency=1, stop=stop))
    await asyncio.wait_for(started.wait(), DEADLINE_S)
    stop.set()
    await asyncio.wait_for(worker, DEADLINE_S)
    assert finished == ["inv_slow"]
    assert await queue.depth() == 0


async def test_the_job_of_a_vanished_worker_is_taken_again(backend: Backend) -> None:
    queue = backend.queue
    ran: list[Job] = []
    done = asyncio.Event()

    async def handler(job: Job) -> None:
        ran.append(job)
        done.set()

    await queue.enqueue(Job("investigate", "inv_orphan"))
    await backend.abandon()
    assert await queue.depth() == 1
    took = await run_until(queue, handler, done)
    assert [(j.investigation_id, j.attempt) for j in ran] == [("inv_orphan", 2)]
    assert took < 5  # lease or heartbeat silence of 1 s, plus polling
    assert await queue.depth() == 0


async def test_check_raises_when_the_server_cannot_be_reached(backend: Backend) -> None:
    queue = backend.unreachable()
    try:
        with pytest.raises(QueueUnavailableError):
            await queue.check()
        with pytest.raises(QueueUnavailableError):
            await queue.depth()
    finally:
        await queue.aclose()


async def run_past(queue: JobQueue, handler: Handler, done: asyncio.Event,
                   linger_s: float = 1.5, concurrency: int = 2) -> None:
    """Run a worker until `done` is set, then `linger_s` longer (past leases and silences)."""
    async def linger() -> None:
        await asyncio.wait_for(done.wait(), DEADLINE_S)
        await asyncio.sleep(linger_s)

    finished = asyncio.Event()

    async def after() -> None:
        await linger()
        finished.set()

    await run_until(queue, handler, finished, after=after, concurrency=concurrency)


async def test_a_failing_job_whose_twin_waits_gives_way_to_it(backend: Backend) -> None:
    queue = backend.queue
    attempts: list[int] = []
    done = asyncio.Event()

    async def handler(job: Job) -> None:
        attempts.append(job.attempt)
        if len(attempts) == 1:
            # a new delivery of the same job arrives while this one runs, then this one fails
            await queue.enqueue(Job("resume", "inv_twin"))
            raise RuntimeError("first run fails")
        done.set()

    await queue.enqueue(Job("resume", "inv_twin"))
    await run_past(queue, handler, done, concurrency=1)  # the twin waits, nobody takes it
    # the waiting twin ran; the failed one was not put back next to it
    assert attempts == [1, 1]
    assert await queue.depth() == 0


async def test_a_vanished_workers_job_whose_twin_waits_is_done_once_the_twin_ran(
        backend: Backend) -> None:
    queue = backend.queue
    ran: list[Job] = []
    done = asyncio.Event()

    async def handler(job: Job) -> None:
        ran.append(job)
        done.set()

    await queue.enqueue(Job("resume", "inv_both"))
    await backend.abandon()
    await queue.enqueue(Job("resume", "inv_both"))  # waits next to the abandoned one
    assert await queue.depth() == 2
    await run_past(queue, handler, done)
    # at least once: the twin ran; the abandoned one ran again or gave way to it
    assert ran and len(ran) <= 2
    assert {(job.kind, job.investigation_id) for job in ran} == {("resume", "inv_both")}
    assert await queue.depth() == 0
