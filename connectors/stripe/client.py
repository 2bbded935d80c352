"""A thin read-only wrapper over the official `stripe` SDK, speaking sleuth's errors.

The SDK's native async path is used (`StripeClient` with its httpx client). Its
own retries are off: the core resilience policy is the only retry loop. Each
call runs under the timeouts of the current attempt, and every `StripeError`
becomes the matching `core.errors` type.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, Literal

import httpx
import stripe
from pydantic import SecretStr

from connectors.stripe.config import StripeConfig
from core.errors import (
    AuthError,
    BadResponseError,
    ConnectionFailedError,
    ConnectTimeoutError,
    ResponseTimeoutError,
    SleuthError,
    error_for_status,
    parse_retry_after,
)
from core.resilience import Attempt

Resource = Literal["customers", "subscriptions", "invoices", "charges", "refunds"]

# The timeout of the attempt in progress; a context variable, so concurrent calls
# on one client each keep their own.
_ATTEMPT_TIMEOUT: ContextVar[httpx.Timeout | None] = ContextVar("stripe_attempt_timeout",
                                                                default=None)


class _AttemptTimeoutHTTPXClient(stripe.HTTPXClient):
    """The SDK's httpx client, with the current attempt's timeouts instead of a fixed one."""

    def _get_request_args_kwargs(  # type: ignore[no-untyped-def]
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any
    ):
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        timeout = _ATTEMPT_TIMEOUT.get()
        if timeout is not None:
            kwargs["timeout"] = timeout
        return [args, kwargs]


def _header(headers: Any, name: str) -> str | None:
    """Read a header from the SDK's header mapping, whatever its case."""
    if not headers:
        return None
    try:
        for key, value in headers.items():
            if str(key).lower() == name.lower():
                return str(value)
    except AttributeError:
        return None
    return None


def translate(exc: stripe.StripeError) -> SleuthError:
    """Return the sleuth error for a Stripe SDK error."""
    message = f"stripe: {exc.user_message or type(exc).__name__}"[:500]
    if isinstance(exc, stripe.APIConnectionError):
        cause = exc.__cause__
        if isinstance(cause, httpx.ConnectTimeout):
            return ConnectTimeoutError(message)
        if isinstance(cause, httpx.TimeoutException):
            return ResponseTimeoutError(message)
        return ConnectionFailedError(message)
    status = exc.http_status
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return AuthError(message, status=status)
    if status is None or status < 400:
        # a 2xx/3xx the SDK could not read; its message would quote the body, so leave it out
        return BadResponseError(f"stripe: answer is not Stripe's JSON (HTTP {status})",
                                status=status)
    retry_after = parse_retry_after(_header(exc.headers, "retry-after"))
    return error_for_status(status, message, retry_after=retry_after)


def _as_page(payload: Any, what: str) -> dict[str, Any]:
    """Check that a list or search answer holds a `data` list of objects with ids."""
    body = payload.to_dict(for_json=True) if isinstance(payload, stripe.StripeObject) else payload
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise BadResponseError(f"stripe: {what}: answer has no 'data' list")
    for item in body["data"]:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise BadResponseError(f"stripe: {what}: an element has no string 'id'")
    return body


class StripeSession:
    """One SDK client per event loop, each request bounded by its attempt's timeouts.

    Shared by the read-only connector and the write effector: one place owns the SDK's
    set-up (retries off, per-attempt timeouts, base address for sandboxes).
    """

    def __init__(self, api_key: SecretStr, *, base_url: str | None,
                 api_version: str | None) -> None:
        self._api_key = api_key
        self._base_url = base_url
        self._api_version = api_version
        self._client: stripe.StripeClient | None = None
        self._http: _AttemptTimeoutHTTPXClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def sdk(self) -> stripe.StripeClient:
        """Return the SDK client, made for the running event loop."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # httpx connection pools belong to one event loop
            self._http = _AttemptTimeoutHTTPXClient(timeout=30.0)
            base = {"api": self._base_url.rstrip("/")} if self._base_url else None
            self._client = stripe.StripeClient(
                self._api_key.get_secret_value(),
                base_addresses=base,  # type: ignore[arg-type]
                stripe_version=self._api_version,
                max_network_retries=0,
                http_client=self._http,
            )
            self._loop = loop
        return self._client

    @contextlib.contextmanager
    def attempt(self, attempt: Attempt) -> Iterator[stripe.StripeClient]:
        """Yield the SDK client with `attempt`'s timeouts applied to its requests."""
        token = _ATTEMPT_TIMEOUT.set(httpx.Timeout(attempt.timeout_s,
                                                   connect=attempt.connect_timeout_s))
        try:
            yield self.sdk()
        finally:
            _ATTEMPT_TIMEOUT.reset(token)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        http, self._http, self._client = self._http, None, None
        if http is not None and self._loop is asyncio.get_running_loop():
            await http.close_async()  # type: ignore[no-untyped-call]


class StripeReader:
    """Read-only calls to Stripe, each under one attempt's timeouts."""

    def __init__(self, config: StripeConfig) -> None:
        if config.api_key is None:
            raise AuthError("stripe: no API key configured")
        self._session = StripeSession(config.api_key, base_url=config.base_url,
                                      api_version=config.api_version)

    async def _call(self, attempt: Attempt, what: str,
                    request: Callable[[stripe.StripeClient], Awaitable[Any]]) -> dict[str, Any]:
        try:
            with self._session.attempt(attempt) as sdk:
                payload = await request(sdk)
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        except (ValueError, TypeError, KeyError) as exc:  # the SDK choking on a payload
            raise BadResponseError(f"stripe: {what}: unreadable answer ({type(exc).__name__})"
                                   ) from exc
        return _as_page(payload, what)

    async def list(self, attempt: Attempt, resource: Resource,
                   params: dict[str, Any]) -> dict[str, Any]:
        """List one page of `resource` (a Stripe list object as a dict)."""
        async def request(sdk: stripe.StripeClient) -> Any:
            service = getattr(sdk.v1, resource)
            return await service.list_async(params=params)

        return await self._call(attempt, f"list {resource}", request)

    async def search_customers(self, attempt: Attempt, query: str,
                               limit: int) -> dict[str, Any]:
        """Search customers with Stripe's search query language (a search result as a dict)."""
        async def request(sdk: stripe.StripeClient) -> Any:
            return await sdk.v1.customers.search_async(params={"query": query, "limit": limit})

        return await self._call(attempt, "search customers", request)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._session.aclose()
