"""Webhook payloads and signatures without HTTP: round trips, the Zendesk template, HMACs."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from starlette.datastructures import Headers

from core.domain import Ticket
from sandbox.cases import load_case
from service.errors import WebhookPayloadError, WebhookReplayError, WebhookSignatureError
from service.webhooks.metrics import webhook_metrics
from service.webhooks.payloads import (
    ZENDESK_TRIGGER_TEMPLATE,
    Delivery,
    intercom_body,
    intercom_delivery,
    parse_generic,
    parse_intercom_envelope,
    parse_zendesk,
    zendesk_body,
)
from service.webhooks.send import signed_request
from service.webhooks.signatures import (
    check_fresh,
    generic_headers,
    intercom_headers,
    verify_generic,
    verify_intercom,
    verify_zendesk,
    zendesk_headers,
)
from service.webhooks.text import html_to_text, text_to_html
from tests.service.conftest import CASES

PUBLIC = sorted(CASES.glob("pub-*"))


def ticket_of(folder: Path) -> Ticket:
    return load_case(folder).case.ticket


@pytest.mark.parametrize("folder", PUBLIC, ids=lambda p: p.name)
def test_every_demo_ticket_round_trips_through_every_source(folder: Path) -> None:
    ticket = ticket_of(folder)
    assert parse_zendesk(zendesk_body(ticket), "inv-1") == Delivery(
        "inv-1", ticket.model_copy(update={"source": "zendesk"}))
    assert parse_generic(signed_request("generic", ticket, "k", event_id="g-1").body) == \
        Delivery("g-1", ticket)
    envelope = parse_intercom_envelope(intercom_body(ticket, notification_id="notif_1",
                                                     created_at=1_800_000_000))
    assert envelope.created_at == 1_800_000_000
    # Intercom knows only priority / not priority
    priority = "high" if ticket.priority in ("high", "urgent") else "normal"
    assert intercom_delivery(envelope) == Delivery(
        "notif_1", ticket.model_copy(update={"source": "intercom", "priority": priority}))


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.just("\n"),
                max_size=200)


@given(_TEXT)
def test_html_bodies_give_back_the_text(body: str) -> None:
    assert html_to_text(text_to_html(body)) == body


def test_intercom_html_becomes_lines_of_text() -> None:
    html = ("<p>Hi,</p><p>calls fail with <b>402</b> &amp; &lt;nothing&gt; else</p>"
            "<script>alert(1)</script><ul><li>one</li><li>two<br/>lines</li></ul>")
    assert html_to_text(html) == "Hi,\ncalls fail with 402 & <nothing> else\n\none\ntwo\nlines"


def render_zendesk(values: dict[str, str]) -> bytes:
    """Render the trigger template the way Zendesk does: placeholders JSON-escaped."""
    out = ZENDESK_TRIGGER_TEMPLATE
    for name, value in values.items():
        out = out.replace("{{" + name + "}}", json.dumps(value)[1:-1])
    assert "{{" not in out
    return out.encode()


def test_the_documented_zendesk_template_parses() -> None:
    body = render_zendesk({
        "ticket.id": "43492", "ticket.created_at_with_timestamp": "2026-02-17T15:30:00Z",
        "ticket.title": 'All calls "402"', "ticket.description": "Line one\nLine two",
        "ticket.priority": "High", "ticket.tags": "billing vip",
        "ticket.requester.name": "Marcus Feld",
        "ticket.requester.email": "marcus.feld@birchwoodapps.com"})
    delivery = parse_zendesk(body, "01HINVOCATION")
    t = delivery.ticket
    assert delivery.event_id == "01HINVOCATION"
    assert (t.id, t.subject, t.body, t.priority, t.tags) == (
        "43492", 'All calls "402"', "Line one\nLine two", "high", ["billing", "vip"])
    assert t.created_at == datetime(2026, 2, 17, 15, 30, tzinfo=UTC)
    assert t.requester.email == "marcus.feld@birchwoodapps.com"


def test_zendesk_event_id_falls_back_to_the_body() -> None:
    payload = json.loads(zendesk_body(ticket_of(PUBLIC[0])))
    assert parse_zendesk(json.dumps({**payload, "event_id": "body-1"}).encode(),
                         None).event_id == "body-1"
    assert parse_zendesk(json.dumps({**payload, "event_id": "body-1"}).encode(),
                         "hdr-1").event_id == "hdr-1"
    with pytest.raises(WebhookPayloadError, match="event_id"):
        parse_zendesk(json.dumps(payload).encode(), None)
    with pytest.raises(WebhookPayloadError, match="Invocation-Id"):
        parse_zendesk(json.dumps(payload).encode(), "has spaces in it")


@pytest.mark.parametrize(("change", "field"), [
    ({"priority": "whenever"}, "ticket.priority"),
    ({"created_at": "2026-02-17T15:30:00"}, "ticket.created_at"),
    ({"id": ""}, "ticket.id"),
    ({"description": "x" * 100_001}, "ticket.description")])
def test_zendesk_fields_are_checked(change: dict[str, str], field: str) -> None:
    payload = json.loads(zendesk_body(ticket_of(PUBLIC[0])))
    payload["ticket"].update(change)
    with pytest.raises(WebhookPayloadError, match="^" + re.escape(field)):
        parse_zendesk(json.dumps(payload).encode(), "inv")


def test_intercom_needs_someone_to_answer() -> None:
    payload = json.loads(intercom_body(ticket_of(PUBLIC[0]), notification_id="n",
                                       created_at=1))
    payload["data"]["item"]["source"]["author"] = {"type": "admin", "email": "agent@x.io"}
    with pytest.raises(WebhookPayloadError, match=r"author\.email"):
        intercom_delivery(parse_intercom_envelope(json.dumps(payload).encode()))


def test_signatures_verify_and_refuse() -> None:
    body = b'{"a": 1}'
    at = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    zd = Headers(zendesk_headers("s3cret", body, timestamp=at))
    assert zd["X-Zendesk-Webhook-Signature-Timestamp"] == "2026-11-22T10:00:00Z"
    assert verify_zendesk("s3cret", body, zd) == at.timestamp()
    verify_intercom("s3cret", body, Headers(intercom_headers("s3cret", body)))
    assert verify_generic("s3cret", body, Headers(generic_headers("s3cret", body,
                                                                  timestamp=1234))) == 1234
    for verify, headers in [(verify_zendesk, zd),
                            (verify_intercom, Headers(intercom_headers("s3cret", body))),
                            (verify_generic, Headers(generic_headers("s3cret", body)))]:
        with pytest.raises(WebhookSignatureError, match="does not match"):
            verify("other", body, headers)  # type: ignore[operator]
        with pytest.raises(WebhookSignatureError, match="does not match"):
            verify("s3cret", body + b" ", headers)  # type: ignore[operator]
    # a non-ASCII header value is a mismatch, not a crash
    with pytest.raises(WebhookSignatureError):
        verify_intercom("s3cret", body, Headers({"X-Hub-Signature": "sha1=é"}))


def test_check_fresh_bounds_both_ways() -> None:
    check_fresh(1000.0, 300, now=1299.0)
    check_fresh(1000.0, 300, now=701.0)
    with pytest.raises(WebhookReplayError, match="ago"):
        check_fresh(1000.0, 300, now=1301.0)
    with pytest.raises(WebhookReplayError, match="future"):
        check_fresh(1000.0, 300, now=699.0)


def test_metrics_register_once_per_registry() -> None:
    registry = CollectorRegistry()
    assert webhook_metrics(registry) is webhook_metrics(registry)
    webhook_metrics(registry).observe("zendesk", "accepted", 0.004)
    assert registry.get_sample_value("sleuth_webhooks_received_total",
                                     {"source": "zendesk", "outcome": "accepted"}) == 1
    other = CollectorRegistry()
    assert webhook_metrics(other) is not webhook_metrics(registry)


def test_operations_doc_shows_the_template_the_parser_expects() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    section = doc.split("## Webhooks", 1)[1]
    shown = re.search(r"```json\n(.*?)```", section, re.S)
    assert shown is not None
    assert shown.group(1).strip() == ZENDESK_TRIGGER_TEMPLATE.strip()
