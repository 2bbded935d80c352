"""Webhook ingress over HTTP: each source's valid delivery, duplicates, every refusal."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from core.domain import Ticket
from sandbox.cases import load_case
from service.api.app import create_app
from service.context import ServiceContext, build_context
from service.queue.base import Job, JobQueue, QueueUnavailableError
from service.webhooks.payloads import generic_body
from service.webhooks.send import WEBHOOK_SOURCES, SignedRequest, WebhookSource, signed_request
from service.webhooks.signatures import (
    GENERIC_SIGNATURE,
    GENERIC_TIMESTAMP,
    INTERCOM_SIGNATURE,
    ZENDESK_SIGNATURE,
    ZENDESK_TIMESTAMP,
    generic_headers,
    intercom_headers,
    zendesk_headers,
)
from tests.service.conftest import CASES, WEBHOOK_SECRETS

TICKET = load_case(CASES / "pub-06-card-declined").case.ticket
MakeClient = Callable[..., Awaitable[tuple[ServiceContext, httpx.AsyncClient]]]


def secret(source: str) -> str:
    return WEBHOOK_SECRETS[f"{source}_secret"]


def signed(source: WebhookSource, event_id: str = "evt-1", *, ticket: Ticket = TICKET,
           at: float | None = None, key: str | None = None) -> SignedRequest:
    return signed_request(source, ticket, key or secret(source), event_id=event_id, at=at)


async def post(client: httpx.AsyncClient, req: SignedRequest, **changes: Any) -> httpx.Response:
    headers = {**req.headers, **changes.pop("headers", {})}
    return await client.post(req.path, content=changes.pop("content", req.body), headers=headers)


async def assert_refused(resp: httpx.Response, status: int, code: str,
                         ctx: ServiceContext, *, stored: int = 0) -> dict[str, Any]:
    """Check the error answer's shape, and that nothing (more) was stored or enqueued."""
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code
    assert error["request_id"] == resp.headers["X-Request-ID"]
    assert "Traceback" not in resp.text and 'File "' not in resp.text
    assert await ctx.queue.depth() == stored
    assert len(ctx.store.list()) == stored
    return dict(error)


@pytest.fixture
async def make_client(make_settings: Callable[..., Any]) -> AsyncIterator[MakeClient]:
    """Return a factory of (context, client) on settings with overrides."""
    made: list[tuple[ServiceContext, httpx.AsyncClient]] = []

    async def make(**overrides: Any) -> tuple[ServiceContext, httpx.AsyncClient]:
        ctx = build_context(make_settings(**overrides))
        await ctx.queue.setup()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(ctx)),
                                   base_url="http://sleuth.test")
        made.append((ctx, client))
        return ctx, client

    yield make
    for ctx, client in made:
        await client.aclose()
        await ctx.aclose()


# -- accepted -----------------------------------------------------------------------------


@pytest.mark.parametrize("source", WEBHOOK_SOURCES)
async def test_a_valid_delivery_is_stored_and_queued_once(
        source: WebhookSource, client: httpx.AsyncClient, service_ctx: ServiceContext) -> None:
    resp = await post(client, signed(source))
    assert resp.status_code == 202, resp.text
    body = resp.json()
    inv = body["investigation_id"]
    assert body == {"investigation_id": inv, "status": "queued", "duplicate": False,
                    "links": {"self": f"/v1/investigations/{inv}",
                              "events": f"/v1/investigations/{inv}/events"}}
    row = service_ctx.store.get(inv)
    assert (row.source, row.ticket_id, row.event_id) == (source, TICKET.id, "evt-1")
    stored = row.ticket_model()
    assert (stored.subject, stored.body, stored.requester) == (
        TICKET.subject, TICKET.body, TICKET.requester)
    assert await service_ctx.queue.depth() == 1


@pytest.mark.parametrize("source", WEBHOOK_SOURCES)
async def test_the_same_event_twice_is_one_investigation(
        source: WebhookSource, client: httpx.AsyncClient, service_ctx: ServiceContext) -> None:
    first = await post(client, signed(source))
    again = await post(client, signed(source))  # a retry: signed again, same event id
    assert first.status_code == again.status_code == 202
    assert again.json()["investigation_id"] == first.json()["investigation_id"]
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    assert len(service_ctx.store.list()) == 1
    assert await service_ctx.queue.depth() == 1
    other = await post(client, signed(source, "evt-2"))  # another event of the same ticket
    assert other.status_code == 202
    assert other.json()["investigation_id"] != first.json()["investigation_id"]
    assert await service_ctx.queue.depth() == 2


@pytest.mark.parametrize("source", WEBHOOK_SOURCES)
async def test_a_chunked_body_within_the_limit_is_read_whole(
        source: WebhookSource, client: httpx.AsyncClient, service_ctx: ServiceContext) -> None:
    req = signed(source)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(req.body), 100):
            yield req.body[i:i + 100]

    resp = await client.post(req.path, content=chunks(), headers=req.headers)
    assert resp.status_code == 202, resp.text
    assert await service_ctx.queue.depth() == 1


async def test_an_intercom_reply_carries_the_users_reply(
        client: httpx.AsyncClient, service_ctx: ServiceContext) -> None:
    note = json.loads(signed("intercom").body)
    note["topic"] = "conversation.user.replied"
    note["data"]["item"]["conversation_parts"]["conversation_parts"] = [
        {"part_type": "note", "body": "<p>internal</p>", "author": {"type": "admin"}},
        {"part_type": "comment", "body": "<p>Still failing &amp; urgent</p>",
         "author": {"type": "user", "email": "marcus.feld@birchwoodapps.com"}}]
    body = json.dumps(note).encode()
    resp = await client.post("/v1/webhooks/intercom", content=body,
                             headers=intercom_headers(secret("intercom"), body))
    assert resp.status_code == 202, resp.text
    ticket = service_ctx.store.get(resp.json()["investigation_id"]).ticket_model()
    assert ticket.body == TICKET.body + "\n\nStill failing & urgent"
    assert "internal" not in ticket.body


async def test_an_intercom_ping_is_acknowledged_and_ignored(
        client: httpx.AsyncClient, service_ctx: ServiceContext) -> None:
    body = json.dumps({"type": "notification_event", "id": "notif_ping", "topic": "ping",
                       "created_at": int(time.time()),
                       "data": {"item": {"type": "ping", "message": "hi"}}}).encode()
    resp = await client.post("/v1/webhooks/intercom", content=body,
                             headers=intercom_headers(secret("intercom"), body))
    assert resp.status_code == 200
    assert resp.json()["status"] == "ignored"
    assert await service_ctx.queue.depth() == 0 and service_ctx.store.list() == []


# -- refused: authenticity -----------------------------------------------------------------


@pytest.mark.parametrize("source", WEBHOOK_SOURCES)
async def test_a_forged_body_is_refused(source: WebhookSource, client: httpx.AsyncClient,
                                        service_ctx: ServiceContext) -> None:
    req = signed(source)
    forged = req.body.replace(b"Marcus Feld", b"Mallory Fee")
    assert forged != req.body
    resp = await post(client, req, content=forged)
    error = await assert_refused(resp, 401, "webhook_signature_invalid", service_ctx)
    assert "does not match" in error["message"]


@pytest.mark.parametrize("source", WEBHOOK_SOURCES)
async def test_a_wrong_secret_is_refused(source: WebhookSource, client: httpx.AsyncClient,
                                         service_ctx: ServiceContext) -> None:
    resp = await post(client, signed(source, key="not-the-configured-secret"))
    await assert_refused(resp, 401, "webhook_signature_invalid", service_ctx)


@pytest.mark.parametrize(("source", "header"), [
    ("zendesk", ZENDESK_SIGNATURE), ("zendesk", ZENDESK_TIMESTAMP),
    ("intercom", INTERCOM_SIGNATURE),
    ("generic", GENERIC_SIGNATURE), ("generic", GENERIC_TIMESTAMP)])
async def test_a_missing_header_is_refused(source: WebhookSource, header: str,
                                           client: httpx.AsyncClient,
                                           service_ctx: ServiceContext) -> None:
    req = signed(source)
    headers = {k: v for k, v in req.headers.items() if k != header}
    resp = await client.post(req.path, content=req.body, headers=headers)
    error = await assert_refused(resp, 401, "webhook_signature_invalid", service_ctx)
    assert header in error["message"]


@pytest.mark.parametrize("source", WEBHOOK_SOURCES)
@pytest.mark.parametrize("offset", [-1, 1], ids=["stale", "future"])
async def test_a_timestamp_outside_the_tolerance_is_a_replay(
        source: WebhookSource, offset: int, client: httpx.AsyncClient,
        service_ctx: ServiceContext) -> None:
    tolerance = service_ctx.settings.service.webhook_tolerance_s
    resp = await post(client, signed(source, at=time.time() + offset * (tolerance + 60)))
    error = await assert_refused(resp, 401, "webhook_stale", service_ctx)
    assert ("future" in error["message"]) == (offset > 0)
    # just inside the window is taken
    ok = await post(client, signed(source, at=time.time() + offset * (tolerance - 30)))
    assert ok.status_code == 202, ok.text


async def test_a_resigned_timestamp_needs_the_secret(
        client: httpx.AsyncClient, service_ctx: ServiceContext) -> None:
    old = signed("generic", at=time.time() - 3600)
    fresh = {GENERIC_TIMESTAMP: str(int(time.time()))}  # a replayer bumps the time only
    resp = await post(client, old, headers=fresh)
    await assert_refused(resp, 401, "webhook_signature_invalid", service_ctx)


@pytest.mark.parametrize("source", WEBHOOK_SOURCES)
async def test_an_unconfigured_source_is_refused(source: WebhookSource,
                                                 make_client: MakeClient) -> None:
    ctx, client = await make_client(service={f"{source}_secret": None})
    resp = await post(client, signed(source))
    error = await assert_refused(resp, 503, "configuration_invalid", ctx)
    assert f"service.{source}_secret" in error["message"]


# -- refused: size and shape ----------------------------------------------------------------


@pytest.mark.parametrize("source", WEBHOOK_SOURCES)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_oversized_body_is_refused_before_it_is_read(
        source: WebhookSource, chunked: bool, client: httpx.AsyncClient,
        service_ctx: ServiceContext) -> None:
    limit = service_ctx.settings.service.body_limit_bytes
    big = TICKET.model_copy(update={"body": "x" * 90_000, "subject": "y" * 1_000})
    req = signed(source, ticket=big)  # validly signed: the size alone refuses it
    size = 16_384
    pieces = [req.body[i:i + size] for i in range(0, len(req.body), size)] * 4
    read = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal read
        for piece in pieces:
            read += 1
            yield piece

    headers = dict(req.headers)
    if not chunked:
        headers["Content-Length"] = str(sum(map(len, pieces)))
    resp = await client.post(req.path, content=chunks(), headers=headers)
    assert ("content-length" in resp.request.headers) is not chunked
    await assert_refused(resp, 413, "payload_too_large", service_ctx)
    # refused on the declared length before any read, or as soon as the count passed it
    assert read == 0 if not chunked else read <= limit // size + 2 < len(pieces)


@pytest.mark.parametrize("source", WEBHOOK_SOURCES)
async def test_malformed_json_is_refused(source: WebhookSource, client: httpx.AsyncClient,
                                         service_ctx: ServiceContext) -> None:
    body = b'{"ticket": {"id": "1",'
    resp = await post(client, signed_raw(source, body))
    error = await assert_refused(resp, 422, "webhook_payload_invalid", service_ctx)
    assert "JSON" in error["message"]


@pytest.mark.parametrize(("source", "field"), [
    ("zendesk", "ticket.requester.email"), ("intercom", "data.item.source"),
    ("generic", "ticket.requester.email")])
async def test_a_wrong_shape_names_the_field(source: WebhookSource, field: str,
                                             client: httpx.AsyncClient,
                                             service_ctx: ServiceContext) -> None:
    payload = json.loads(signed(source).body)
    if source == "intercom":
        del payload["data"]["item"]["source"]
    else:
        del payload["ticket"]["requester"]["email"]
    resp = await post(client, signed_raw(source, json.dumps(payload).encode()))
    error = await assert_refused(resp, 422, "webhook_payload_invalid", service_ctx)
    assert error["message"].startswith(field), error["message"]


def signed_raw(source: WebhookSource, body: bytes) -> SignedRequest:
    """Sign any body the way `source` does (Intercom has no signed time outside the body)."""
    if source == "zendesk":
        return SignedRequest("/v1/webhooks/zendesk", body,
                             zendesk_headers(secret(source), body, invocation_id="evt-raw"))
    if source == "intercom":
        return SignedRequest("/v1/webhooks/intercom", body,
                             intercom_headers(secret(source), body))
    return SignedRequest("/v1/webhooks/generic", body, generic_headers(secret(source), body))


# -- backpressure and an unreachable queue ----------------------------------------------------


async def test_a_full_queue_pushes_back_but_answers_duplicates(
        make_client: MakeClient) -> None:
    ctx, client = await make_client(queue={"max_depth": 2, "retry_after_s": 7})
    first = await post(client, signed("generic", "evt-1"))
    assert (await post(client, signed("generic", "evt-2"))).status_code == 202
    full = await post(client, signed("generic", "evt-3"))
    await assert_refused(full, 429, "queue_full", ctx, stored=2)
    assert full.headers["Retry-After"] == "7"
    again = await post(client, signed("generic", "evt-1"))
    assert again.status_code == 202
    assert again.json()["investigation_id"] == first.json()["investigation_id"]
    assert again.json()["duplicate"] is True
    # workers drain the queue; once the cached depth expires, deliveries are taken again
    with ctx.engine.begin() as conn:
        conn.execute(text("DELETE FROM jobs"))
    await asyncio.sleep(0.3)
    assert (await post(client, signed("generic", "evt-3"))).status_code == 202


class FlakyQueue(JobQueue):
    """The real queue, unreachable while `down` is set."""

    def __init__(self, inner: JobQueue) -> None:
        self.inner = inner
        self.down = True

    def _check_up(self) -> None:
        if self.down:
            raise QueueUnavailableError("broker unreachable")

    async def enqueue(self, job: Job) -> None:
        self._check_up()
        await self.inner.enqueue(job)

    async def depth(self) -> int:
        return await self.inner.depth()

    async def check(self) -> None:
        self._check_up()

    async def run(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError


async def test_an_unreachable_queue_is_503_and_the_retry_is_safe(
        client: httpx.AsyncClient, service_ctx: ServiceContext) -> None:
    real = service_ctx.queue
    flaky = service_ctx.queue = FlakyQueue(real)
    resp = await post(client, signed("zendesk"))
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "queue_unavailable"
    assert await real.depth() == 0
    flaky.down = False  # the ticket system retries the same invocation
    retry = await post(client, signed("zendesk"))
    assert retry.status_code == 202
    assert await real.depth() == 1
    assert len(service_ctx.store.list()) == 1


# -- metrics and the API description ----------------------------------------------------------


async def test_deliveries_are_counted_by_source_and_outcome(
        client: httpx.AsyncClient, service_ctx: ServiceContext) -> None:
    await post(client, signed("generic"))
    await post(client, signed("generic"))
    await post(client, signed("zendesk", key="wrong"))
    registry = service_ctx.metrics.registry

    def count(source: str, outcome: str) -> float | None:
        return registry.get_sample_value("sleuth_webhooks_received_total",
                                         {"source": source, "outcome": outcome})

    assert count("generic", "accepted") == 1
    assert count("generic", "duplicate") == 1
    assert count("zendesk", "webhook_signature_invalid") == 1
    assert registry.get_sample_value("sleuth_webhook_ack_seconds_count",
                                     {"source": "generic", "outcome": "accepted"}) == 1


async def test_the_openapi_document_declares_every_answer(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    for source in WEBHOOK_SOURCES:
        op = doc["paths"][f"/v1/webhooks/{source}"]["post"]
        assert {"202", "401", "413", "422", "429", "503"} <= set(op["responses"])
        assert "Retry-After" in op["responses"]["429"]["headers"]
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        assert schema["type"] == "object" and "$defs" not in str(schema)
        assert any(p["in"] == "header" and p["required"] for p in op["parameters"])
    assert "ErrorResponse" in doc["components"]["schemas"]
    assert "IgnoredEvent" in str(doc["paths"]["/v1/webhooks/intercom"]["post"]["responses"])


def test_generic_body_is_the_documented_shape() -> None:
    payload = json.loads(generic_body(TICKET, event_id="e"))
    assert set(payload) == {"event_id", "ticket"}
    assert Ticket.model_validate(payload["ticket"]) == TICKET
