"""The job queue interface every backend implements (see tests/service/test_queue_contract.py).

Delivery is at least once: a job is acknowledged only after its handler returns, so a
worker that dies mid-job leaves it to be taken again. Handlers must therefore be
idempotent (`service.jobs.InvestigationJobs` is). A handler that raises has its job
tried again later, up to `max_attempts`; then `on_dead` is called and the job stops.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from core.errors import TransientError

JobKind = Literal["investigate", "resume"]


@dataclass(frozen=True)
class Job:
    """One unit of work: investigate a ticket, or resume after approvals."""

    kind: JobKind
    investigation_id: str
    attempt: int = 1


Handler = Callable[[Job], Awaitable[None]]
DeadHandler = Callable[[Job, str], Awaitable[None]]


class QueueUnavailableError(TransientError):
    """The queue's storage or broker cannot be reached."""

    code = "queue_unavailable"


class JobQueue(ABC):
    """Where accepted work waits for a worker."""

    max_attempts: int = 5

    @abstractmethod
    async def enqueue(self, job: Job) -> None:
        """Add a job; a job for the same investigation and kind already waiting is kept once."""

    @abstractmethod
    async def depth(self) -> int:
        """Return how many jobs wait or run (the backpressure gauge)."""

    @abstractmethod
    async def check(self) -> None:
        """Raise `QueueUnavailableError` unless the queue can be reached."""

    @abstractmethod
    async def run(self, handler: Handler, *, concurrency: int, stop: asyncio.Event,
                  on_dead: DeadHandler | None = None, worker_name: str = "worker") -> None:
        """Take jobs and run `handler` on each, `concurrency` at once, until `stop` is set."""

    async def setup(self) -> None:  # noqa: B027 - optional hook
        """Create what the queue needs (tables, schema); safe to call again."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
