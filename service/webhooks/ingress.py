"""The source-independent steps of a delivery: a bounded body read, backpressure, accept."""

from __future__ import annotations

import asyncio
import time
import weakref

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select
from starlette.requests import Request

from core.errors import InvalidRequestError
from core.telemetry import get_logger
from service.context import ServiceContext
from service.errors import PayloadTooLargeError, QueueFullError
from service.investigations import Investigation, dedupe_key
from service.queue.base import JobQueue, QueueUnavailableError
from service.webhooks.payloads import Delivery

log = get_logger("sleuth.webhooks")
DEPTH_TTL_S = 0.25


async def read_body(request: Request, limit: int) -> bytes:
    """Return the body, refusing one over `limit` bytes before it is all read."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidRequestError("the Content-Length header is not a number")
        if int(declared) > limit:
            raise PayloadTooLargeError(f"the body is {declared} bytes; at most {limit} bytes "
                                       "are accepted", limit=limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # a chunked body, or one longer than it said
            raise PayloadTooLargeError(f"the body is over {limit} bytes; at most {limit} bytes "
                                       "are accepted", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


class DepthGauge:
    """The queue's depth, counted at most every `ttl_s`, plus what was accepted since.

    A burst of deliveries shares one count of the job table; adding this process's own
    accepts keeps the estimate from lagging behind a burst that fills the queue.
    """

    def __init__(self, queue: JobQueue, ttl_s: float = DEPTH_TTL_S) -> None:
        self.queue = queue
        self.ttl_s = ttl_s
        self._counted = 0
        self._added = 0
        self._at = float("-inf")
        self._lock: asyncio.Lock | None = None

    async def depth(self) -> int:
        """Return the estimated number of waiting and running jobs."""
        if time.monotonic() - self._at > self.ttl_s:
            self._lock = self._lock or asyncio.Lock()
            async with self._lock:
                if time.monotonic() - self._at > self.ttl_s:  # nobody counted while we waited
                    self._counted = await self.queue.depth()
                    self._added = 0
                    self._at = time.monotonic()
        return self._counted + self._added

    def added(self) -> None:
        """Note one job this process enqueued."""
        self._added += 1


_GAUGES: weakref.WeakKeyDictionary[JobQueue, DepthGauge] = weakref.WeakKeyDictionary()


def depth_gauge(queue: JobQueue) -> DepthGauge:
    """Return the depth gauge of `queue` (one per queue object)."""
    gauge = _GAUGES.get(queue)
    if gauge is None:
        gauge = _GAUGES[queue] = DepthGauge(queue)
    return gauge


def _find(engine: Engine, source: str, ticket_id: str, event_id: str) -> Investigation | None:
    key = dedupe_key(source, ticket_id, event_id)
    with Session(engine, expire_on_commit=False) as session:
        return session.exec(select(Investigation).where(Investigation.dedupe_key == key)).first()


async def admit(ctx: ServiceContext, source: str,
                delivery: Delivery) -> tuple[Investigation, bool]:
    """Store and enqueue a delivery once, unless the queue is full; return it and if new."""
    limits = ctx.settings.queue
    gauge = depth_gauge(ctx.queue)
    ticket_id, event_id = delivery.ticket.id, delivery.event_id
    try:
        depth = await gauge.depth()
        if depth >= limits.max_depth:
            # a retry of an event already taken is answered, not pushed back
            known = await asyncio.to_thread(_find, ctx.engine, source, ticket_id, event_id)
            if known is None:
                raise QueueFullError(
                    f"{depth} jobs wait (limit {limits.max_depth}); retry in "
                    f"{limits.retry_after_s} s", retry_after_s=limits.retry_after_s)
            return known, False
        row, created = await ctx.accept(source, event_id, delivery.ticket)
    except SQLAlchemyError as exc:
        # the database is the queue's storage too; the text may quote ticket data: not shown
        log.warning("webhook_store_failed", source=source, error_type=type(exc).__name__)
        raise QueueUnavailableError("cannot record the delivery now; retry later") from None
    if created:
        gauge.added()
    return row, created
