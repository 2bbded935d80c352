"""Shared pieces for the httpx clients of connectors and effectors."""

from __future__ import annotations

import httpx

from core.errors import (
    BadResponseError,
    ConnectionFailedError,
    ConnectTimeoutError,
    ResponseTimeoutError,
    SleuthError,
    error_for_status,
    parse_retry_after,
)
from core.resilience import Attempt


def attempt_timeout(attempt: Attempt) -> httpx.Timeout:
    """Return httpx timeouts for one attempt."""
    return httpx.Timeout(attempt.timeout_s, connect=attempt.connect_timeout_s)


def transport_error(system: str, exc: httpx.HTTPError) -> SleuthError:
    """Return the sleuth error for an httpx failure that produced no response."""
    text = f"{system}: {type(exc).__name__}"
    if isinstance(exc, httpx.ConnectTimeout):
        return ConnectTimeoutError(text)
    if isinstance(exc, httpx.TimeoutException):
        return ResponseTimeoutError(text)
    if isinstance(exc, httpx.TransportError):
        return ConnectionFailedError(text)
    return BadResponseError(text)


def status_error(system: str, response: httpx.Response, what: str = "") -> SleuthError:
    """Return the sleuth error for an HTTP error answer (the body is not quoted)."""
    text = f"{system}: HTTP {response.status_code}" + (f" ({what[:120]})" if what else "")
    return error_for_status(response.status_code, text,
                            retry_after=parse_retry_after(response.headers.get("retry-after")))
