"""Routes: investigations, their list (cursor pages) and their progress (Server-Sent Events).

Every route needs a token with role reader or above. The API never returns the raw ticket
(subject, body, requester): only its id and source, and the investigation record, which
the graph redacted at intake (see `service/api/schemas.py`).

Progress: `GET /v1/investigations/{id}/events` is a Server-Sent Events stream. It replays
the stored events after `Last-Event-ID` (or `?after=`), then polls for new ones; each
event's `id` is its sequence number, so a client that reconnects misses nothing. When the
investigation completes, fails or waits for approval the stream sends `event: end` and
closes (after a resume, connect again with the last id). `?format=json` answers the same
events as one JSON document instead, for clients without SSE.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from core.errors import InvalidRequestError
from service.api.auth import ApiRole, Principal, require
from service.api.deps import get_ctx
from service.api.schemas import (
    EventList,
    EventOut,
    InvestigationOut,
    InvestigationPage,
    InvestigationSummary,
    error_responses,
)
from service.context import ServiceContext
from service.investigations import Investigation, InvestigationStore, Status

router = APIRouter(prefix="/v1/investigations", tags=["investigations"])
Ctx = Annotated[ServiceContext, Depends(get_ctx)]
Reader = Annotated[Principal, Depends(require(ApiRole.READER))]
InvestigationId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,40}$",
                                      description="the investigation's id (inv_…)")]

POLL_S = 0.25
HEARTBEAT_S = 15.0
# a stream is closed after this long; the client reconnects with Last-Event-ID
STREAM_MAX_S = 900.0
# the stream ends here: nothing more happens until people decide (or ever)
END_STATUSES = frozenset({Status.COMPLETED, Status.FAILED, Status.WAITING_APPROVAL})
_TICK = timedelta(microseconds=1)
_BATCH = 500


@router.get("/{investigation_id}", response_model=InvestigationOut,
            responses=error_responses(401, 403, 404, 422, 429))
async def get_investigation(investigation_id: InvestigationId, ctx: Ctx,
                            _: Reader) -> InvestigationOut:
    """Return one investigation, with its (redacted) record once it has one."""
    row = await asyncio.to_thread(ctx.store.get, investigation_id)
    return InvestigationOut.full(row)


# -- pages ----------------------------------------------------------------------------


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise InvalidRequestError("`before` needs a time zone (e.g. 2026-03-01T12:00:00Z)")
    return when


def page_after(store: InvestigationStore, *, status: str | None, source: str | None,
               ticket_id: str | None, cursor: tuple[datetime, str | None] | None,
               limit: int) -> list[Investigation]:
    """Return up to limit + 1 investigations older than the cursor, newest first."""
    def fetch_rows(before: datetime | None, n: int) -> list[Investigation]:
        return store.list(status=status, source=source, ticket_id=ticket_id, before=before,
                          limit=n)

    if cursor is None:
        return fetch_rows(None, limit + 1)
    when, last_id = cursor
    if last_id is None:
        return fetch_rows(when, limit + 1)
    # rows created in the same microsecond as the cursor's row sort by id (descending);
    # the store filters on time only, so fetch from that microsecond on and drop seen ones
    fetch = limit + 17
    while True:
        rows = fetch_rows(when + _TICK, fetch)
        kept = [r for r in rows if r.created_at < when or r.id < last_id]
        if len(kept) > limit or len(rows) < fetch:
            return kept[:limit + 1]
        fetch *= 2


@router.get("", response_model=InvestigationPage,
            responses=error_responses(400, 401, 403, 422, 429))
async def list_investigations(
    request: Request, ctx: Ctx, _: Reader,
    status: Status | None = None,
    source: Literal["zendesk", "intercom", "email", "generic"] | None = None,
    ticket_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[datetime | None, Query(
        description="only investigations created before this time (`next` sets it)")] = None,
    before_id: Annotated[str | None, Query(
        pattern=r"^[A-Za-z0-9_-]{1,40}$",
        description="with `before`: also those created at that very time whose id sorts "
                    "below this one (`next` sets it); ignored without `before`")] = None,
) -> InvestigationPage:
    """List investigations, newest first, a page at a time (follow `next`)."""
    cursor = (_aware(before), before_id) if before is not None else None
    rows = await asyncio.to_thread(
        page_after, ctx.store, status=status.value if status else None, source=source,
        ticket_id=ticket_id, cursor=cursor, limit=limit)
    next_url = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        params = {k: v for k, v in (("status", status.value if status else None),
                                    ("source", source), ("ticket_id", ticket_id))
                  if v is not None}
        params.update(limit=str(limit), before=last.created_at.isoformat(), before_id=last.id)
        next_url = f"{request.url.path}?{urlencode(params)}"
    return InvestigationPage(items=[InvestigationSummary.of(r) for r in rows], next=next_url)


# -- events ---------------------------------------------------------------------------

_EVENTS_200 = {
    "description": "Server-Sent Events (`event: progress`, `id` = seq; then `event: end`), "
                   "or with `format=json` the events as one document",
    "model": EventList,
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


@router.get("/{investigation_id}/events", response_model=None,
            responses={200: _EVENTS_200, **error_responses(401, 403, 404, 422, 429)})
async def investigation_events(
    request: Request, investigation_id: InvestigationId, ctx: Ctx, _: Reader,
    after: Annotated[int, Query(ge=0, le=2**31, description="only events after this seq")] = 0,
    fmt: Annotated[Literal["sse", "json"], Query(alias="format")] = "sse",
    limit: Annotated[int, Query(ge=1, le=500, description="format=json: at most this many")]
    = 500,
    last_event_id: Annotated[int, Header(alias="Last-Event-ID", ge=0, le=2**31,
                                         description="the last seq received (reconnects)")] = 0,
) -> EventSourceResponse | EventList:
    """Stream an investigation's progress events (or list them with format=json)."""
    row = await asyncio.to_thread(ctx.store.get, investigation_id)
    start = max(after, last_event_id)
    if fmt == "json":
        events = await asyncio.to_thread(ctx.store.events, investigation_id, start, limit)
        out = [EventOut.of(e) for e in events]
        return EventList(investigation_id=investigation_id, status=Status(row.status),
                         events=out, last_seq=out[-1].seq if out else start)
    return EventSourceResponse(_stream(request, ctx.store, investigation_id, start),
                               ping=HEARTBEAT_S, send_timeout=30)


async def _stream(request: Request, store: InvestigationStore, investigation_id: str,
                  after: int) -> AsyncIterator[ServerSentEvent]:
    """Replay stored events after `after`, then follow new ones until the run stops."""
    deadline = time.monotonic() + STREAM_MAX_S
    seq = after
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return
        # the status is read before the events: the worker stores every event before it
        # marks the investigation finished, so nothing is stored after a final status
        row = await asyncio.to_thread(store.get, investigation_id)
        while True:
            events = await asyncio.to_thread(store.events, investigation_id, seq, _BATCH)
            for event in events:
                seq = event.seq
                yield ServerSentEvent(data=event.data, event="progress", id=str(event.seq))
            if len(events) < _BATCH:
                break
        status = Status(row.status)
        if status in END_STATUSES:
            yield ServerSentEvent(event="end", data=json.dumps(
                {"investigation_id": investigation_id, "status": status.value,
                 "last_seq": seq}))
            return
        await asyncio.sleep(POLL_S)
