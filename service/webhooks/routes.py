"""Webhook routes: Zendesk, Intercom and generic ticket events, verified and deduplicated.

Every delivery goes through the same steps, in this order, and stops at the first refusal:
the source's secret is configured (503) → the body is within the limit (413, checked on
Content-Length and while reading) → the signature matches (401) → the signed time is
within the tolerance (401 webhook_stale) → the payload parses (422) → the queue has room
(429 + Retry-After; a duplicate of an accepted event is still answered) → the event is
stored once and its job enqueued (202). Nothing is stored or enqueued before the last step.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from core.errors import ConfigurationError, SleuthError
from service.api.deps import get_ctx
from service.webhooks.ingress import admit, log, read_body
from service.webhooks.metrics import webhook_metrics
from service.webhooks.payloads import (
    Delivery,
    GenericPayload,
    Ignored,
    IntercomNotification,
    ZendeskPayload,
    intercom_delivery,
    parse_generic,
    parse_intercom_envelope,
    parse_zendesk,
)
from service.webhooks.schemas import ERROR_RESPONSES, Accepted, IgnoredEvent, request_doc
from service.webhooks.signatures import (
    GENERIC_SIGNATURE,
    GENERIC_TIMESTAMP,
    INTERCOM_SIGNATURE,
    ZENDESK_INVOCATION,
    ZENDESK_SIGNATURE,
    ZENDESK_TIMESTAMP,
    Headers,
    check_fresh,
    verify_generic,
    verify_intercom,
    verify_zendesk,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
Reader = Callable[[str, bytes, Headers, int], Delivery | Ignored]


def _read_zendesk(secret: str, body: bytes, headers: Headers, tolerance_s: int) -> Delivery:
    check_fresh(verify_zendesk(secret, body, headers), tolerance_s)
    return parse_zendesk(body, headers.get(ZENDESK_INVOCATION))


def _read_intercom(secret: str, body: bytes, headers: Headers,
                   tolerance_s: int) -> Delivery | Ignored:
    verify_intercom(secret, body, headers)
    envelope = parse_intercom_envelope(body)  # the signed created_at is in the body
    check_fresh(envelope.created_at, tolerance_s)
    return intercom_delivery(envelope)


def _read_generic(secret: str, body: bytes, headers: Headers, tolerance_s: int) -> Delivery:
    check_fresh(verify_generic(secret, body, headers), tolerance_s)
    return parse_generic(body)


def _accepted(investigation_id: str, status: str, duplicate: bool) -> dict[str, object]:
    link = f"/v1/investigations/{investigation_id}"
    return {"investigation_id": investigation_id, "status": status, "duplicate": duplicate,
            "links": {"self": link, "events": f"{link}/events"}}


async def _receive(request: Request, source: str, read: Reader) -> Response:
    ctx = get_ctx(request)
    service = ctx.settings.service
    started = time.perf_counter()
    outcome = "internal_error"
    try:
        secret = getattr(service, f"{source}_secret")
        if secret is None or not secret.get_secret_value():
            raise ConfigurationError(
                f"service.{source}_secret is not set (SLEUTH_SERVICE__{source.upper()}_SECRET): "
                f"{source} webhooks are refused until it is", setting=f"service.{source}_secret")
        body = await read_body(request, service.body_limit_bytes)
        delivery = read(secret.get_secret_value(), body, request.headers,
                        service.webhook_tolerance_s)
        if isinstance(delivery, Ignored):
            outcome = "ignored"
            log.info("webhook_ignored", source=source, reason=delivery.reason)
            return JSONResponse({"status": "ignored", "reason": delivery.reason})
        row, created = await admit(ctx, source, delivery)
        outcome = "accepted" if created else "duplicate"
    except SleuthError as exc:
        outcome = exc.code
        log.info("webhook_refused", source=source, code=exc.code, error=exc.message[:200])
        raise
    finally:
        webhook_metrics(ctx.metrics.registry).observe(source, outcome,
                                                      time.perf_counter() - started)
    log.info("webhook_accepted", source=source, investigation_id=row.id,
             ticket_id=delivery.ticket.id, duplicate=not created)
    return JSONResponse(_accepted(row.id, row.status, not created), status_code=202)


_ZENDESK_HEADERS = [
    (ZENDESK_SIGNATURE, "base64(HMAC-SHA256(signing secret, timestamp + raw body))", True),
    (ZENDESK_TIMESTAMP, "ISO 8601 time of signing, e.g. 2026-11-22T10:00:00Z", True),
    (ZENDESK_INVOCATION, "the event id (retries share it); else the body's event_id", False),
]
_INTERCOM_HEADERS = [
    (INTERCOM_SIGNATURE, "sha1=<hex HMAC-SHA1(client secret, raw body)>", True),
]
_GENERIC_HEADERS = [
    (GENERIC_TIMESTAMP, "unix seconds of signing", True),
    (GENERIC_SIGNATURE, 'sha256=<hex HMAC-SHA256(secret, f"{timestamp}." + raw body)>', True),
]


@router.post("/zendesk", status_code=202, response_model=Accepted, responses=ERROR_RESPONSES,
             summary="Receive a Zendesk ticket event",
             openapi_extra=request_doc(ZendeskPayload, _ZENDESK_HEADERS))
async def zendesk_webhook(request: Request) -> Response:
    """Verify a Zendesk trigger webhook and queue its ticket for investigation, once."""
    return await _receive(request, "zendesk", _read_zendesk)


@router.post("/intercom", status_code=202, response_model=Accepted,
             responses={200: {"model": IgnoredEvent,
                              "description": "a verified notification of another topic "
                                             "(ping included): nothing to investigate"},
                        **ERROR_RESPONSES},
             summary="Receive an Intercom conversation notification",
             openapi_extra=request_doc(IntercomNotification, _INTERCOM_HEADERS))
async def intercom_webhook(request: Request) -> Response:
    """Verify an Intercom notification and queue its conversation for investigation, once.

    The replay window is checked on the notification's signed `created_at`.
    """
    return await _receive(request, "intercom", _read_intercom)


@router.post("/generic", status_code=202, response_model=Accepted, responses=ERROR_RESPONSES,
             summary="Receive a ticket from any system",
             openapi_extra=request_doc(GenericPayload, _GENERIC_HEADERS))
async def generic_webhook(request: Request) -> Response:
    """Verify a generic delivery and queue its ticket for investigation, once."""
    return await _receive(request, "generic", _read_generic)
