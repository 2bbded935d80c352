"""A ticket system's side of the service: signed webhook deliveries, and following their runs.

`signed_delivery` builds what Zendesk, Intercom or a generic sender posts for a ticket
(the ticket's own source picks the webhook; email tickets go through the generic one).
`ServiceClient.deliver` posts it and, like a ticket system, retries the same event after
connection errors, 5xx and 429 (honouring Retry-After); `follow` reads an investigation's
Server-Sent Events until it stops, then fetches it. The demo, the restart test and anyone
scripting against a running `sleuth serve` use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from core.domain import Ticket
from core.errors import SleuthError
from core.settings import Settings
from service.webhooks.send import SignedRequest, WebhookSource, signed_request

FINAL = frozenset({"completed", "waiting_approval", "failed"})
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


class ServiceClientError(SleuthError):
    """The service answered something a client cannot go on from."""

    code = "service_client_error"


@dataclass(frozen=True)
class WebhookSecrets:
    """The signing secrets of the three webhook sources."""

    zendesk: str
    intercom: str
    generic: str

    @classmethod
    def of(cls, settings: Settings) -> WebhookSecrets:
        """Return the secrets configured in `settings` (each must be set)."""
        values = []
        for source in ("zendesk", "intercom", "generic"):
            secret = getattr(settings.service, f"{source}_secret")
            if secret is None:
                raise ServiceClientError(f"service.{source}_secret is not set", source=source)
            values.append(secret.get_secret_value())
        return cls(*values)


def webhook_source(ticket: Ticket) -> WebhookSource:
    """Return the webhook a ticket arrives by: its own system, generic for email."""
    if ticket.source == "zendesk":
        return "zendesk"
    if ticket.source == "intercom":
        return "intercom"
    return "generic"


def signed_delivery(ticket: Ticket, secrets: WebhookSecrets, *, event_id: str,
                    source: WebhookSource | None = None) -> SignedRequest:
    """Return the signed delivery of `ticket` as event `event_id` (now), by its webhook."""
    source = source or webhook_source(ticket)
    return signed_request(source, ticket, getattr(secrets, source), event_id=event_id)


@dataclass(frozen=True)
class Accepted:
    """The service's answer to a delivery it took."""

    investigation_id: str
    status: str
    duplicate: bool
    attempts: int
    ms: float


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", default)))
    except ValueError:
        return default


class ServiceClient:
    """Talks to a running sleuth service: webhooks in, investigations out."""

    def __init__(self, base_url: str, *, token: str | None = None,
                 http: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._own = http is None
        self.http = http or httpx.AsyncClient(base_url=self.base_url, timeout=httpx.Timeout(
            10.0, connect=2.0))

    async def aclose(self) -> None:
        """Close the HTTP client (when this object made it)."""
        if self._own:
            await self.http.aclose()

    async def __aenter__(self) -> ServiceClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    def _auth(self) -> dict[str, str]:
        if self.token is None:
            raise ServiceClientError("this call needs an API token")
        return {"Authorization": f"Bearer {self.token}"}

    # -- webhooks ----------------------------------------------------------------------

    async def deliver(self, delivery: SignedRequest, *, give_up_after_s: float = 30.0,
                      retry_delay_s: float = 0.2, max_wait_s: float = 5.0,
                      on_retry: Callable[[str], None] | None = None) -> Accepted:
        """Post a delivery; retry the same event on connection errors, 5xx and 429."""
        deadline = time.monotonic() + give_up_after_s
        attempts = 0
        while True:
            attempts += 1
            started = time.perf_counter()
            why: str
            wait = retry_delay_s
            try:
                response = await self.http.post(delivery.path, content=delivery.body,
                                                headers=delivery.headers)
            except httpx.TransportError as exc:
                why = f"{type(exc).__name__}"
            else:
                if response.status_code == 202:
                    body = response.json()
                    return Accepted(body["investigation_id"], body["status"],
                                    bool(body.get("duplicate")), attempts,
                                    (time.perf_counter() - started) * 1000)
                if response.status_code not in RETRIED_STATUSES:
                    raise ServiceClientError(
                        f"{delivery.path} answered {response.status_code}: "
                        f"{response.text[:300]}", status=response.status_code)
                why = f"HTTP {response.status_code}"
                if response.status_code == 429:
                    wait = min(_retry_after(response, retry_delay_s), max_wait_s)
            if time.monotonic() + wait > deadline:
                raise ServiceClientError(f"{delivery.path}: no 202 after {attempts} attempt(s), "
                                      f"last: {why}", attempts=attempts)
            if on_retry is not None:
                on_retry(why)
            await asyncio.sleep(wait)

    # -- investigations ----------------------------------------------------------------

    async def investigation(self, investigation_id: str) -> dict[str, Any]:
        """Return one investigation (with its record once it has one)."""
        for _ in range(20):
            response = await self.http.get(f"/v1/investigations/{investigation_id}",
                                           headers=self._auth())
            if response.status_code == 429:
                await asyncio.sleep(min(_retry_after(response, 1.0), 5.0))
                continue
            if response.status_code != 200:
                raise ServiceClientError(f"GET investigation {investigation_id} answered "
                                      f"{response.status_code}: {response.text[:300]}",
                                      status=response.status_code)
            found: dict[str, Any] = response.json()
            return found
        raise ServiceClientError(f"GET investigation {investigation_id}: rate limited throughout")

    async def events(self, investigation_id: str, *,
                     after: int = 0) -> AsyncGenerator[tuple[str, str, dict[str, Any]], None]:
        """Yield (event, id, data) from the investigation's SSE stream until it closes."""
        headers = {**self._auth(), "Accept": "text/event-stream"}
        timeout = httpx.Timeout(10.0, read=60.0)
        async with self.http.stream("GET", f"/v1/investigations/{investigation_id}/events",
                                    params={"after": after}, headers=headers,
                                    timeout=timeout) as response:
            if response.status_code != 200:
                await response.aread()
                raise ServiceClientError(f"events of {investigation_id} answered "
                                      f"{response.status_code}: {response.text[:300]}",
                                      status=response.status_code)
            kind, seq = "message", ""
            data: list[str] = []
            async for line in response.aiter_lines():
                if not line:  # a blank line ends an event (text/event-stream)
                    if data:
                        yield kind, seq, json.loads("\n".join(data))
                    kind, seq, data = "message", "", []
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    kind = value
                elif name == "data":
                    data.append(value)
                elif name == "id":
                    seq = value

    async def follow(self, investigation_id: str, *,
                     on_event: Callable[[dict[str, Any]], None] | None = None,
                     timeout_s: float = 300.0) -> dict[str, Any]:
        """Follow progress until the investigation stops (or waits for people); return it."""
        deadline = time.monotonic() + timeout_s
        last = 0
        while time.monotonic() < deadline:
            try:
                async with contextlib.aclosing(self.events(investigation_id,
                                                           after=last)) as stream:
                    async for kind, seq, data in stream:
                        if kind == "end":
                            break
                        last = int(seq or last)
                        if on_event is not None:
                            on_event(data)
            except httpx.TransportError:
                await asyncio.sleep(0.5)  # reconnect after the last event seen
            found = await self.investigation(investigation_id)
            if found["status"] in FINAL:
                return found
        raise ServiceClientError(f"investigation {investigation_id} did not finish within "
                              f"{timeout_s:.0f} s")
