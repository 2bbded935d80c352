"""Property: whatever arrives, a webhook never answers 5xx and never enqueues what it refuses."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.context import ServiceContext
from service.webhooks.send import WEBHOOK_SOURCES, WebhookSource, signed_request
from service.webhooks.signatures import (
    GENERIC_SIGNATURE,
    GENERIC_TIMESTAMP,
    INTERCOM_SIGNATURE,
    ZENDESK_INVOCATION,
    ZENDESK_SIGNATURE,
    ZENDESK_TIMESTAMP,
    generic_headers,
    intercom_headers,
    zendesk_headers,
)
from tests.service.conftest import WEBHOOK_SECRETS
from tests.service.test_webhooks import TICKET

_HEADER_NAMES = st.sampled_from([
    ZENDESK_SIGNATURE, ZENDESK_TIMESTAMP, ZENDESK_INVOCATION, INTERCOM_SIGNATURE,
    GENERIC_SIGNATURE, GENERIC_TIMESTAMP, "Content-Type"])
# header values an HTTP client can send: latin-1, no line breaks
_HEADER_VALUES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                       exclude_characters="\x7f"), max_size=80)
_SIGNATURE_LIKE = st.sampled_from(["sha1=", "sha256=", ""]).flatmap(
    lambda prefix: st.text("0123456789abcdef", max_size=64).map(lambda h: prefix + h))
_STAMPS = st.one_of(st.integers(-10**12, 10**13).map(str),
                    st.sampled_from(["2026-11-22T10:00:00Z", "9999-12-31T23:59:59+14:00",
                                     "0001-01-01T00:00:00-12:00", "not a time"]))
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["type", "id", "topic", "created_at", "data", "item", "ticket",
                         "event_id", "source", "body", "subject", "requester", "email",
                         "tags", "priority", "author", "contacts", "conversation_parts"])
        | st.text(max_size=8), inner, max_size=6),
    max_leaves=25)
_SETTINGS = settings(max_examples=120, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


async def _assert_refused_and_nothing_queued(resp: httpx.Response,
                                             ctx: ServiceContext) -> None:
    assert resp.status_code < 500, resp.text
    assert resp.status_code != 202, resp.text
    assert "Traceback" not in resp.text
    assert await ctx.queue.depth() == 0
    assert ctx.store.list(limit=1) == []


@_SETTINGS
@given(source=st.sampled_from(WEBHOOK_SOURCES), body=st.binary(max_size=2_000),
       headers=st.dictionaries(_HEADER_NAMES, _HEADER_VALUES | _SIGNATURE_LIKE | _STAMPS,
                               max_size=5))
async def test_arbitrary_deliveries_are_refused_cleanly(
        source: str, body: bytes, headers: dict[str, str], client: httpx.AsyncClient,
        service_ctx: ServiceContext) -> None:
    raw = {name: value.encode("latin-1") for name, value in headers.items()}
    resp = await client.post(f"/v1/webhooks/{source}", content=body, headers=raw)
    await _assert_refused_and_nothing_queued(resp, service_ctx)
    assert resp.status_code in (400, 401, 413, 422)


def _sign(source: str, body: bytes, stamp: int) -> dict[str, str]:
    secret = WEBHOOK_SECRETS[f"{source}_secret"]
    if source == "zendesk":
        return zendesk_headers(secret, body, timestamp=datetime.fromtimestamp(stamp, UTC))
    if source == "intercom":
        return intercom_headers(secret, body)
    return generic_headers(secret, body, timestamp=stamp)


def _as_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("latin-1")


@_SETTINGS
@given(source=st.sampled_from(WEBHOOK_SOURCES),
       payload=st.one_of(_JSON.map(lambda v: json.dumps(v).encode()), st.binary(max_size=500)),
       envelope=st.booleans())
async def test_signed_garbage_is_refused_cleanly(
        source: str, payload: bytes, envelope: bool, client: httpx.AsyncClient,
        service_ctx: ServiceContext) -> None:
    """Validly signed, fresh, but not a ticket: the parsers refuse it without crashing."""
    now = int(time.time())
    body = payload
    if envelope and source == "intercom":
        # past the envelope, so that the conversation parser meets the garbage
        body = json.dumps({"type": "notification_event", "id": "notif_x", "created_at": now,
                           "topic": "conversation.user.created",
                           "data": {"item": _as_json(payload)}}).encode()
    resp = await client.post(f"/v1/webhooks/{source}", content=body,
                             headers=_sign(source, body, now))
    await _assert_refused_and_nothing_queued(resp, service_ctx)
    assert resp.status_code == 422, resp.text


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    items = node.items() if isinstance(node, dict) else \
        enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        found += _paths(value, (*prefix, key))
    return found


_DROP = object()


@_SETTINGS
@given(source=st.sampled_from(WEBHOOK_SOURCES), data=st.data())
async def test_mutated_payloads_are_taken_or_refused_cleanly(
        source: WebhookSource, data: st.DataObject, client: httpx.AsyncClient,
        service_ctx: ServiceContext) -> None:
    """A valid payload with one field replaced or dropped: 202, or a 4xx that stores nothing."""
    now = int(time.time())
    req = signed_request(source, TICKET, WEBHOOK_SECRETS[f"{source}_secret"],
                         event_id=f"evt-{uuid.uuid4().hex}", at=now)
    payload = json.loads(req.body)
    path = data.draw(st.sampled_from(_paths(payload)), label="path")
    value = data.draw(_JSON | st.just(_DROP), label="value")
    parent = payload
    for key in path[:-1]:
        parent = parent[key]
    if value is _DROP:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    body = json.dumps(payload).encode()
    depth, rows = await service_ctx.queue.depth(), len(service_ctx.store.list(limit=1000))
    resp = await client.post(req.path, content=body, headers=_sign(source, body, now))
    assert resp.status_code in (200, 202, 401, 422), resp.text  # 401: a mutated created_at
    added = int(resp.status_code == 202 and not resp.json()["duplicate"])
    assert await service_ctx.queue.depth() == depth + added
    assert len(service_ctx.store.list(limit=1000)) == rows + added
