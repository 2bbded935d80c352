"""On-call paging: a signed webhook carrying a PagerDuty Events API v2 `trigger` event.

The body is the Events v2 shape (`routing_key`, `event_action: trigger`,
`dedup_key`, `payload` with `summary`, `source`, `severity`), so the URL can be
PagerDuty's `/v2/enqueue` or an in-house relay. The request is signed:
`X-Sleuth-Timestamp` (Unix seconds) and `X-Sleuth-Signature: v1=<hex>`, the
HMAC-SHA256 of `<timestamp>.<body>` under the signing secret, so a receiver can
refuse forged and replayed requests.

Idempotency: `dedup_key` is the action's key, and so is the `Idempotency-Key`
header. PagerDuty folds a repeated trigger with an open alert's dedup key into
that alert, and a relay must dedupe on either, so a retried or resumed page
opens one incident.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from core.domain import ActionType
from core.errors import InvalidRequestError
from core.resilience import Attempt, ResiliencePolicy
from governance.effectors.base import (
    ActionParams,
    Applied,
    Effector,
    EffectorAction,
    LoopClient,
    attempt_timeout,
    json_object,
    parse_params,
    status_error,
    transport_error,
)
from governance.effectors.ledger import Ledger

SUMMARY_MAX = 1024  # PagerDuty's limit on payload.summary


class PagingConfig(BaseModel):
    """Where to send pages, the integration's routing key and the signing secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field("https://events.pagerduty.com/v2/enqueue", max_length=500)
    routing_key: SecretStr
    signing_secret: SecretStr
    source: str = Field("sleuth", max_length=255, description="payload.source of every page")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("url must start with https:// or http://")
        return value


class PageParams(ActionParams):
    """How bad it is; the summary is the action's text."""

    severity: Literal["critical", "error", "warning", "info"] = "error"
    component: str | None = Field(None, max_length=255)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Return the `X-Sleuth-Signature` value for a body sent at `timestamp`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"v1={digest.hexdigest()}"


def page_event(action: EffectorAction, key: str, routing_key: str, source: str) -> dict[str, Any]:
    """Return the Events v2 trigger event for `action`."""
    params = parse_params(PageParams, action)
    summary = " ".join(action.text.split())
    if not summary:
        raise InvalidRequestError("escalate_to_oncall: the text (page summary) is empty")
    if len(summary) > SUMMARY_MAX:
        summary = summary[:SUMMARY_MAX - 1] + "…"
    payload: dict[str, Any] = {
        "summary": summary, "source": source, "severity": params.severity,
        "custom_details": {"investigation_id": action.investigation_id,
                           "ticket_id": action.ticket_id, "action_index": action.index},
    }
    if params.component:
        payload["component"] = params.component
    return {"routing_key": routing_key, "event_action": "trigger", "dedup_key": key,
            "payload": payload}


class PagingEffector(Effector):
    """Pages the on-call engineer."""

    name = "paging"
    action_types: ClassVar[frozenset[ActionType]] = frozenset({ActionType.ESCALATE_TO_ONCALL})

    def __init__(self, config: PagingConfig, *, policy: ResiliencePolicy, ledger: Ledger,
                 budget_s: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(policy=policy, ledger=ledger, budget_s=budget_s)
        self.config = config
        self._clock = clock
        self._http = LoopClient(headers={"Content-Type": "application/json",
                                         "User-Agent": "sleuth-effector/1"})

    async def _apply(self, action: EffectorAction, key: str, attempt: Attempt) -> Applied:
        event = page_event(action, key, self.config.routing_key.get_secret_value(),
                           self.config.source)
        body = json.dumps(event, separators=(",", ":")).encode()
        stamp = str(int(self._clock()))  # signed per attempt: a retry is a fresh request
        headers = {"Idempotency-Key": key, "X-Sleuth-Timestamp": stamp,
                   "X-Sleuth-Signature": sign(self.config.signing_secret.get_secret_value(),
                                              stamp, body)}
        try:
            response = await self._http.get().post(self.config.url, content=body,
                                                   headers=headers,
                                                   timeout=attempt_timeout(attempt))
        except httpx.HTTPError as exc:
            raise transport_error("paging", exc) from None
        if response.status_code >= 400:
            raise status_error("paging", response)
        answer = json_object("paging", response)
        replayed = response.headers.get("idempotent-replayed") == "true"
        return Applied(str(answer.get("dedup_key") or key),
                       f"page {answer.get('status', 'sent')}", replayed)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()
