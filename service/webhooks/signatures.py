"""Webhook signatures: verify what each source signs, and sign deliveries the same way.

    zendesk   X-Zendesk-Webhook-Signature = base64(HMAC-SHA256(secret, timestamp + body))
              X-Zendesk-Webhook-Signature-Timestamp = ISO 8601, e.g. 2026-11-22T10:00:00Z
    intercom  X-Hub-Signature = "sha1=" + hex(HMAC-SHA1(client_secret, body)); no timestamp
              header, so the replay window uses the notification's `created_at` (signed,
              inside the body; see `payloads.parse_intercom_envelope`)
    generic   X-Sleuth-Timestamp = unix seconds
              X-Sleuth-Signature = "sha256=" + hex(HMAC-SHA256(secret, f"{timestamp}." + body))

Digests are compared as bytes with `hmac.compare_digest` (a str comparison raises on
non-ASCII header values). The `*_headers` builders are what the demo, the benchmarks and
the tests send.
"""

from __future__ import annotations

import base64
import hmac
import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from service.errors import WebhookReplayError, WebhookSignatureError

ZENDESK_SIGNATURE = "X-Zendesk-Webhook-Signature"
ZENDESK_TIMESTAMP = "X-Zendesk-Webhook-Signature-Timestamp"
ZENDESK_INVOCATION = "X-Zendesk-Webhook-Invocation-Id"
INTERCOM_SIGNATURE = "X-Hub-Signature"
GENERIC_SIGNATURE = "X-Sleuth-Signature"
GENERIC_TIMESTAMP = "X-Sleuth-Timestamp"
_UNIX_SECONDS = re.compile(r"^[0-9]{1,11}$")

Headers = Mapping[str, str]


def _header(headers: Headers, name: str) -> str:
    value = headers.get(name)
    if not value:
        raise WebhookSignatureError(f"the {name} header is missing", header=name)
    return value


def _raw(value: str) -> bytes:
    # ASGI servers decode header bytes as latin-1: this gives back the bytes that were sent
    return value.encode("latin-1", errors="replace")


def _mac(secret: str, message: bytes, digest: str) -> hmac.HMAC:
    return hmac.new(secret.encode(), message, digest)


def _check(expected: bytes, given: str, header: str) -> None:
    if not hmac.compare_digest(expected, _raw(given)):
        raise WebhookSignatureError(f"the {header} header does not match the body",
                                    header=header)


def check_fresh(signed_at: float, tolerance_s: float, *, now: float | None = None) -> None:
    """Refuse a signature time (unix seconds) further than `tolerance_s` from now."""
    skew = (time.time() if now is None else now) - signed_at
    if skew > tolerance_s:
        raise WebhookReplayError(f"the delivery was signed {skew:.0f} s ago; at most "
                                 f"{tolerance_s} s old is accepted", age_s=round(skew))
    if -skew > tolerance_s:
        raise WebhookReplayError(f"the delivery is signed {-skew:.0f} s in the future; at "
                                 f"most {tolerance_s} s of clock skew is accepted",
                                 age_s=round(skew))


# -- verifying -----------------------------------------------------------------------


def verify_zendesk(secret: str, body: bytes, headers: Headers) -> float:
    """Check a Zendesk signature; return the signed timestamp (unix seconds)."""
    signature = _header(headers, ZENDESK_SIGNATURE)
    stamp = _header(headers, ZENDESK_TIMESTAMP)
    expected = base64.b64encode(_mac(secret, _raw(stamp) + body, "sha256").digest())
    _check(expected, signature, ZENDESK_SIGNATURE)
    try:
        signed_at = datetime.fromisoformat(stamp)
        if signed_at.tzinfo is None:
            raise ValueError("no time zone")
        return signed_at.timestamp()
    except (ValueError, OverflowError):
        raise WebhookSignatureError(f"the {ZENDESK_TIMESTAMP} header is not an ISO 8601 time "
                                    "with a time zone", header=ZENDESK_TIMESTAMP) from None


def verify_intercom(secret: str, body: bytes, headers: Headers) -> None:
    """Check an Intercom signature (the replay window is checked on the body's created_at)."""
    signature = _header(headers, INTERCOM_SIGNATURE)
    expected = b"sha1=" + _mac(secret, body, "sha1").hexdigest().encode()
    _check(expected, signature, INTERCOM_SIGNATURE)


def verify_generic(secret: str, body: bytes, headers: Headers) -> float:
    """Check a generic signature; return the signed timestamp (unix seconds)."""
    signature = _header(headers, GENERIC_SIGNATURE)
    stamp = _header(headers, GENERIC_TIMESTAMP)
    expected = b"sha256=" + _mac(secret, _raw(stamp) + b"." + body, "sha256").hexdigest().encode()
    _check(expected, signature, GENERIC_SIGNATURE)
    if not _UNIX_SECONDS.match(stamp):
        raise WebhookSignatureError(f"the {GENERIC_TIMESTAMP} header is not unix seconds",
                                    header=GENERIC_TIMESTAMP)
    return float(stamp)


# -- signing (senders: the demo, the benchmarks, the tests) ---------------------------


def zendesk_headers(secret: str, body: bytes, *, timestamp: datetime | None = None,
                    invocation_id: str | None = None) -> dict[str, str]:
    """Return the headers Zendesk sends with `body` (a fresh invocation id unless given)."""
    at = datetime.now(UTC) if timestamp is None else timestamp
    if at.tzinfo is None:
        raise ValueError("timestamp needs a time zone")
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    signature = base64.b64encode(_mac(secret, stamp.encode() + body, "sha256").digest())
    return {"Content-Type": "application/json", ZENDESK_SIGNATURE: signature.decode(),
            ZENDESK_TIMESTAMP: stamp,
            ZENDESK_INVOCATION: invocation_id or f"inv-{uuid.uuid4().hex}"}


def intercom_headers(secret: str, body: bytes) -> dict[str, str]:
    """Return the headers Intercom sends with `body`."""
    return {"Content-Type": "application/json",
            INTERCOM_SIGNATURE: "sha1=" + _mac(secret, body, "sha1").hexdigest()}


def generic_headers(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """Return the headers of a generic delivery of `body`, signed now unless told when."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = _mac(secret, stamp.encode() + b"." + body, "sha256").hexdigest()
    return {"Content-Type": "application/json", GENERIC_TIMESTAMP: stamp,
            GENERIC_SIGNATURE: "sha256=" + digest}
