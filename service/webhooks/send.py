"""Signed deliveries of a ticket, as each source would send them (demo, benchmarks, tests)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from core.domain import Ticket
from service.webhooks.payloads import generic_body, intercom_body, zendesk_body
from service.webhooks.signatures import generic_headers, intercom_headers, zendesk_headers

WebhookSource = Literal["zendesk", "intercom", "generic"]
WEBHOOK_SOURCES: tuple[WebhookSource, ...] = ("zendesk", "intercom", "generic")


@dataclass(frozen=True)
class SignedRequest:
    """A POST to make: path, raw body and headers."""

    path: str
    body: bytes
    headers: dict[str, str]


def signed_request(source: WebhookSource, ticket: Ticket, secret: str, *, event_id: str,
                   at: float | None = None) -> SignedRequest:
    """Return the delivery of `ticket` as event `event_id`, signed at `at` (unix s; now)."""
    signed_at = time.time() if at is None else at
    if source == "zendesk":
        body = zendesk_body(ticket)
        headers = zendesk_headers(secret, body, invocation_id=event_id,
                                  timestamp=datetime.fromtimestamp(signed_at, UTC))
    elif source == "intercom":
        body = intercom_body(ticket, notification_id=event_id, created_at=int(signed_at))
        headers = intercom_headers(secret, body)
    else:
        body = generic_body(ticket, event_id=event_id)
        headers = generic_headers(secret, body, timestamp=int(signed_at))
    return SignedRequest(f"/v1/webhooks/{source}", body, headers)
