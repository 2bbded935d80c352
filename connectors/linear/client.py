"""A thin GraphQL-over-HTTP client for Linear, translating failures into sleuth errors.

Linear answers GraphQL errors with codes in `extensions`: `RATELIMITED` for
throttling (whatever the HTTP status) and `AUTHENTICATION_ERROR` for a refused
key. Those codes win over the HTTP status; other failures map by status.
The client makes one request per call: the core policy is the only retry loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx

from connectors.linear.config import LinearConfig
from core.errors import (
    AuthError,
    BadResponseError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    SleuthError,
    error_for_status,
    parse_retry_after,
)
from core.http import transport_error
from core.resilience import Attempt

_INVALID_CODES = frozenset({
    "GRAPHQL_VALIDATION_FAILED", "GRAPHQL_PARSE_FAILED", "BAD_USER_INPUT", "INVALID_INPUT",
})


def _retry_after(headers: httpx.Headers) -> float | None:
    seconds = parse_retry_after(headers.get("retry-after"))
    if seconds is not None:
        return seconds
    # Linear's own header: when the request budget refills, in epoch milliseconds
    reset = headers.get("x-ratelimit-requests-reset")
    try:
        return max(0.0, float(reset) / 1000.0 - time.time()) if reset else None
    except ValueError:
        return None


def graphql_error(errors: list[Any], status: int, headers: httpx.Headers) -> SleuthError:
    """Return the sleuth error for the `errors` list of a GraphQL response."""
    codes: set[str] = set()
    messages: list[str] = []
    for item in errors:
        if not isinstance(item, dict):
            continue
        messages.append(str(item.get("message", ""))[:300])
        ext = item.get("extensions")
        if isinstance(ext, dict):
            codes.update(str(ext[k]).upper().replace(" ", "_")
                         for k in ("code", "type") if ext.get(k))
    text = "linear: " + ("; ".join(m for m in messages if m) or "GraphQL error")
    if "RATELIMITED" in codes:
        return RateLimitedError(text, retry_after=_retry_after(headers))
    if codes & {"AUTHENTICATION_ERROR", "FORBIDDEN"}:
        return AuthError(text, status=status)
    if any(m.startswith("Entity not found") for m in messages):
        return NotFoundError(text, status=status)
    if codes & _INVALID_CODES:
        return InvalidRequestError(text, status=status)
    if status >= 400:
        return error_for_status(status, text, retry_after=_retry_after(headers))
    return BadResponseError(text, status=status)


class LinearClient:
    """Posts GraphQL documents to Linear with the attempt's timeouts; returns `data`."""

    def __init__(self, config: LinearConfig) -> None:
        self._url = config.url
        key = config.api_key.get_secret_value() if config.api_key is not None else ""
        # personal API keys go bare in Authorization (OAuth tokens would use Bearer)
        self._headers = {"Authorization": key, "Content-Type": "application/json",
                         "Accept": "application/json", "User-Agent": "sleuth-linear/1"}
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            # an httpx pool belongs to the event loop that opened its connections
            self._http = httpx.AsyncClient(
                headers=self._headers, follow_redirects=False,
                transport=httpx.AsyncHTTPTransport(retries=0))
            self._loop = loop
        return self._http

    async def execute(self, query: str, variables: dict[str, Any],
                      attempt: Attempt) -> dict[str, Any]:
        """Run one GraphQL query and return its `data` object, or raise a sleuth error."""
        timeout = httpx.Timeout(attempt.timeout_s, connect=attempt.connect_timeout_s)
        try:
            response = await self._client().post(
                self._url, json={"query": query, "variables": variables}, timeout=timeout)
        except httpx.HTTPError as exc:
            raise transport_error("linear", exc) from None
        try:
            body: Any = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors:
            raise graphql_error(errors, response.status_code, response.headers)
        if response.status_code >= 400:
            raise error_for_status(response.status_code, f"linear: HTTP {response.status_code}",
                                   retry_after=_retry_after(response.headers))
        if not isinstance(body, dict):
            raise BadResponseError("linear: response is not a JSON object")
        data = body.get("data")
        if not isinstance(data, dict):
            raise BadResponseError("linear: response has no data object")
        return data

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        if self._http is not None:
            # RuntimeError: its event loop is gone, and the sockets went with it
            with contextlib.suppress(RuntimeError):
                await self._http.aclose()
            self._http = None
