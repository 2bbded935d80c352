"""Investigations over the API: one, pages of them, and their progress as SSE or JSON."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col

from core.settings import Settings
from service.api import investigations as routes
from service.api.app import create_app
from service.context import ServiceContext
from service.investigations import Investigation
from tests.service.api_support import READER, api_client, api_settings, auth, serve, ticket

RECORD = {"diagnosis": {"root_cause": "billing.payment_failed", "confidence": 0.9},
          "tier": "rules", "wall_ms": 12.5, "paused": False}

Api = tuple[ServiceContext, httpx.AsyncClient]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    return api_settings(make_settings, tmp_path)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with api_client(settings) as pair:
        yield pair


def accept(ctx: ServiceContext, ticket_id: str, *, source: str = "zendesk",
           event: str = "e1") -> str:
    row, created = ctx.store.accept(source, event, ticket(ticket_id, source=source))
    assert created
    return row.id


def finish(ctx: ServiceContext, investigation_id: str, **record: Any) -> None:
    assert ctx.store.start(investigation_id, "w1")
    assert ctx.store.finish(investigation_id, {**RECORD, **record})


# -- one ------------------------------------------------------------------------------


async def test_unknown_investigation_is_404(api: Api) -> None:
    _, client = api
    response = await client.get("/v1/investigations/inv_nothing", headers=auth(READER))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "investigation_not_found"


async def test_investigation_has_its_record_and_never_the_raw_ticket(api: Api) -> None:
    ctx, client = api
    inv = accept(ctx, "T-1")
    queued = (await client.get(f"/v1/investigations/{inv}", headers=auth(READER))).json()
    assert queued["status"] == "queued" and queued["record"] is None
    assert queued["ticket_id"] == "T-1" and queued["source"] == "zendesk"
    finish(ctx, inv)
    response = await client.get(f"/v1/investigations/{inv}", headers=auth(READER))
    body = response.json()
    assert body["status"] == "completed" and body["attempts"] == 1
    assert body["root_cause"] == "billing.payment_failed" and body["confidence"] == 0.9
    assert body["record"]["diagnosis"]["root_cause"] == "billing.payment_failed"
    assert body["finished_at"] is not None
    for secret in ("pat.doe@example.com", "555-0100", "Pat Doe", "Card declined"):
        assert secret not in response.text


# -- pages ----------------------------------------------------------------------------


async def _all_pages(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    next_url: str | None = url
    for _ in range(20):
        if next_url is None:
            return items
        page = (await client.get(next_url, headers=auth(READER))).json()
        assert len(page["items"]) <= 2
        items += page["items"]
        next_url = page["next"]
    raise AssertionError("pagination did not end")


async def test_pages_follow_next_newest_first(api: Api) -> None:
    ctx, client = api
    ids = [accept(ctx, f"T-{n}") for n in range(5)]
    items = await _all_pages(client, "/v1/investigations?limit=2")
    assert [i["id"] for i in items] == list(reversed(ids))
    first = (await client.get("/v1/investigations?limit=2", headers=auth(READER))).json()
    assert first["next"].startswith("/v1/investigations?") and "limit=2" in first["next"]


async def test_pages_do_not_skip_rows_created_at_the_same_instant(api: Api) -> None:
    ctx, client = api
    ids = [accept(ctx, f"T-{n}") for n in range(5)]
    same = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with ctx.engine.begin() as conn:
        conn.execute(update(Investigation).where(col(Investigation.id).in_(ids[1:4]))
                     .values(created_at=same))
    items = await _all_pages(client, "/v1/investigations?limit=2")
    assert sorted(i["id"] for i in items) == sorted(ids)
    assert len(items) == 5


async def test_filters_carry_into_next(api: Api) -> None:
    ctx, client = api
    for n in range(3):
        accept(ctx, f"Z-{n}", source="zendesk")
        accept(ctx, f"I-{n}", source="intercom")
    done = accept(ctx, "Z-9", source="zendesk")
    finish(ctx, done)
    items = await _all_pages(client, "/v1/investigations?limit=2&source=intercom")
    assert sorted(i["ticket_id"] for i in items) == ["I-0", "I-1", "I-2"]
    completed = await _all_pages(client, "/v1/investigations?status=completed")
    assert [i["id"] for i in completed] == [done]
    by_ticket = await _all_pages(client, "/v1/investigations?ticket_id=Z-1")
    assert [i["ticket_id"] for i in by_ticket] == ["Z-1"]


async def test_before_takes_a_time_and_refuses_garbage(api: Api) -> None:
    ctx, client = api
    accept(ctx, "T-1")
    old = (await client.get("/v1/investigations?before=2000-01-01T00:00:00Z",
                            headers=auth(READER))).json()
    assert old == {"items": [], "next": None}
    later = (await client.get("/v1/investigations?before=2999-01-01T00:00:00Z",
                              headers=auth(READER))).json()
    assert [i["ticket_id"] for i in later["items"]] == ["T-1"]
    naive = await client.get("/v1/investigations?before=2999-01-01T00:00:00",
                             headers=auth(READER))
    assert naive.status_code == 400
    assert naive.json()["error"]["code"] == "invalid_request"
    for query in ("before=yesterday", "limit=0", "status=lost", "before_id=a%20b"):
        response = await client.get(f"/v1/investigations?{query}", headers=auth(READER))
        assert response.status_code == 422, query


# -- events as JSON -------------------------------------------------------------------


async def test_events_as_json_after_a_seq(api: Api) -> None:
    ctx, client = api
    inv = accept(ctx, "T-1")
    ctx.store.add_events(inv, [{"step": f"s{n}"} for n in range(1, 5)])
    body = (await client.get(f"/v1/investigations/{inv}/events?format=json&after=2",
                             headers=auth(READER))).json()
    assert [e["seq"] for e in body["events"]] == [3, 4]
    assert body["events"][0]["data"] == {"step": "s3"}
    assert body["last_seq"] == 4 and body["status"] == "queued"
    missing = await client.get("/v1/investigations/inv_none/events?format=json",
                               headers=auth(READER))
    assert missing.status_code == 404


# -- events as Server-Sent Events -----------------------------------------------------


async def read_sse(response: httpx.Response, comments: list[str] | None = None
                   ) -> AsyncIterator[dict[str, str]]:
    """Yield the events of an SSE response as {field: value}."""
    current: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if current:
                yield current
            current = {}
        elif line.startswith(":"):
            if comments is not None:
                comments.append(line)
        else:
            name, _, value = line.partition(":")
            current[name] = value.removeprefix(" ")


async def test_finished_investigation_replays_and_ends(api: Api) -> None:
    ctx, client = api
    inv = accept(ctx, "T-1")
    ctx.store.add_events(inv, [{"step": f"s{n}"} for n in range(1, 4)])
    finish(ctx, inv)
    async with asyncio.timeout(10), client.stream(
            "GET", f"/v1/investigations/{inv}/events",
            headers={**auth(READER), "Last-Event-ID": "1"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [e async for e in read_sse(response)]
    assert [(e.get("event"), e.get("id")) for e in events] == [
        ("progress", "2"), ("progress", "3"), ("end", None)]
    assert json.loads(events[0]["data"]) == {"step": "s2"}
    assert json.loads(events[-1]["data"])["status"] == "completed"


async def test_live_stream_follows_new_events_until_the_end(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "HEARTBEAT_S", 0.2)
    async with api_client(settings) as (ctx, _):
        inv = accept(ctx, "T-1")
        ctx.store.add_events(inv, [{"step": "intake"}])
        comments: list[str] = []
        seen: list[dict[str, str]] = []
        with serve(create_app(ctx)) as base:
            async with asyncio.timeout(20), httpx.AsyncClient(base_url=base, timeout=10) as http, \
                    http.stream("GET", f"/v1/investigations/{inv}/events?after=0",
                                headers=auth(READER)) as response:
                assert response.status_code == 200
                async for event in read_sse(response, comments):
                    seen.append(event)
                    if len(seen) == 1:
                        await asyncio.sleep(0.6)  # idle: heartbeats only
                        await asyncio.to_thread(ctx.store.add_events, inv,
                                                [{"step": "gather"}, {"step": "diagnose"}])
                    if len(seen) == 3:
                        await asyncio.to_thread(finish, ctx, inv, paused=True)
    assert [e.get("id") for e in seen] == ["1", "2", "3", None]
    assert [json.loads(e["data"]).get("step") for e in seen[:3]] == [
        "intake", "gather", "diagnose"]
    assert seen[-1]["event"] == "end"
    assert json.loads(seen[-1]["data"])["status"] == "waiting_approval"
    assert comments, "no heartbeat comment while idle"


async def test_stream_stops_polling_when_the_client_goes(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    async with api_client(settings) as (ctx, _):
        inv = accept(ctx, "T-1")
        ctx.store.add_events(inv, [{"step": "intake"}])
        calls: list[float] = []
        real_get = ctx.store.get

        def counting_get(investigation_id: str) -> Investigation:
            calls.append(time.monotonic())
            return real_get(investigation_id)

        monkeypatch.setattr(ctx.store, "get", counting_get)
        with serve(create_app(ctx)) as base:
            async with asyncio.timeout(20), httpx.AsyncClient(base_url=base, timeout=10) as http:
                async with http.stream("GET", f"/v1/investigations/{inv}/events",
                                       headers=auth(READER)) as response:
                    async for _ in read_sse(response):
                        break
                await asyncio.sleep(1.0)
                before = len(calls)
                await asyncio.sleep(1.0)
                assert len(calls) - before <= 1, "the stream still polls after disconnect"
