"""Ticket write-back in Zendesk's API shapes: internal notes, replies, tags and priority.

Every write is one `PUT /api/v2/tickets/{id}.json` (`{"ticket": {"comment":
{"body", "public"}, "additional_tags", "priority"}}`), authenticated with an API
token (`{email}/token:{token}`, basic auth).

Idempotency: Zendesk's ticket update takes no idempotency key, so each write
carries a *marker tag*, `sleuth-` and the first 12 hex digits of the key, in the
same update as its comment, tags or priority. Zendesk applies one update as one
audit, so the marker and the change land together or not at all. Before
writing, the ticket is read: a marker already there means the write was applied
(by an attempt whose answer was lost, or by a run that crashed before the ledger
knew), and nothing is sent. The write is a Zendesk *safe update* (`safe_update`
with the `updated_stamp` just read), so two runs racing on one ticket cannot
both pass the check: the later one gets 409 UpdateConflict, reads again and finds
the marker. Marker tags are seen by agents, never by the requester.
"""

from __future__ import annotations

import base64
import re
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from core.domain import ActionType
from core.errors import BadResponseError, InvalidRequestError
from core.resilience import Attempt, ResiliencePolicy
from governance.effectors.base import (
    ActionParams,
    Applied,
    Effector,
    EffectorAction,
    LoopClient,
    WriteConflictError,
    attempt_timeout,
    json_object,
    parse_params,
    status_error,
    transport_error,
)
from governance.effectors.ledger import Ledger

MARKER_PREFIX = "sleuth-"
_TICKET_ID = re.compile(r"^[0-9]{1,20}$")
_TAG = re.compile(r"^[a-z0-9][a-z0-9_\-:./]{0,79}$")


def marker_tag(key: str) -> str:
    """Return the tag that marks a ticket as written by the action with `key`."""
    return f"{MARKER_PREFIX}{key[:12]}"


class ZendeskConfig(BaseModel):
    """Where the Zendesk account is and the API token to write with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(max_length=500, description="https://<subdomain>.zendesk.com")
    email: str = Field(min_length=3, max_length=320, description="the agent the token belongs to")
    api_token: SecretStr

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("base_url must start with https:// or http://")
        return value.rstrip("/")


class NoParams(ActionParams):
    """Notes and replies take their text from the action, not from params."""


class TagParams(ActionParams):
    """Tags to add to the ticket."""

    tags: list[str] = Field(min_length=1, max_length=20)

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        cleaned = [t.strip().lower() for t in tags]
        for tag in cleaned:
            if not _TAG.match(tag):
                raise ValueError(f"{tag[:40]!r} is not a Zendesk tag (letters, digits, _-:./)")
            if tag.startswith(MARKER_PREFIX):
                raise ValueError(f"tags starting with {MARKER_PREFIX!r} are reserved")
        return list(dict.fromkeys(cleaned))


class PriorityParams(ActionParams):
    """The ticket's new priority."""

    priority: Literal["low", "normal", "high", "urgent"]


class ZendeskClient:
    """Reads and updates tickets, one request per call, with the attempt's timeouts."""

    system = "zendesk"

    def __init__(self, config: ZendeskConfig) -> None:
        self.base_url = config.base_url
        secret = f"{config.email}/token:{config.api_token.get_secret_value()}"
        self._http = LoopClient(headers={
            "Authorization": "Basic " + base64.b64encode(secret.encode()).decode(),
            "Accept": "application/json", "User-Agent": "sleuth-effector/1"})

    def _url(self, ticket_id: str) -> str:
        if not _TICKET_ID.match(ticket_id):
            raise InvalidRequestError(f"zendesk: ticket id {ticket_id[:40]!r} is not numeric")
        return f"{self.base_url}/api/v2/tickets/{ticket_id}.json"

    async def _send(self, method: str, url: str, attempt: Attempt,
                    body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = await self._http.get().request(method, url, json=body,
                                                      timeout=attempt_timeout(attempt))
        except httpx.HTTPError as exc:
            raise transport_error(self.system, exc) from None
        if response.status_code == 409:
            raise WriteConflictError("zendesk: the ticket changed since it was read")
        if response.status_code >= 400:
            raise status_error(self.system, response, _error_name(response))
        return json_object(self.system, response)

    async def ticket(self, ticket_id: str, attempt: Attempt) -> dict[str, Any]:
        """Return the ticket object."""
        body = await self._send("GET", self._url(ticket_id), attempt)
        ticket = body.get("ticket")
        if not isinstance(ticket, dict) or not isinstance(ticket.get("tags", []), list):
            raise BadResponseError("zendesk: answer has no ticket object")
        return ticket

    async def update_once(self, ticket_id: str, changes: dict[str, Any], *, key: str,
                          attempt: Attempt) -> Applied:
        """Apply `changes` to the ticket unless the key's marker shows it was applied."""
        marker = marker_tag(key)
        ticket = await self.ticket(ticket_id, attempt)
        if marker in ticket.get("tags", []):
            return Applied(f"ticket/{ticket_id}", f"marker tag {marker} already on the ticket",
                           replayed=True)
        update = {**changes,
                  "additional_tags": [*changes.get("additional_tags", []), marker],
                  "safe_update": True, "updated_stamp": ticket.get("updated_at")}
        body = await self._send("PUT", self._url(ticket_id), attempt, {"ticket": update})
        found = body.get("audit")
        audit: dict[str, Any] = found if isinstance(found, dict) else {}
        comment = next((e for e in audit.get("events") or []
                        if isinstance(e, dict) and e.get("type") == "Comment"), None)
        if comment is not None and comment.get("id") is not None:
            return Applied(f"ticket/{ticket_id}/comment/{comment['id']}", "comment added")
        if audit.get("id") is not None:
            return Applied(f"ticket/{ticket_id}/audit/{audit['id']}", "ticket updated")
        return Applied(f"ticket/{ticket_id}", "ticket updated")

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()


def _error_name(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("error", ""))[:60] if isinstance(body, dict) else ""


def ticket_changes(action: EffectorAction) -> dict[str, Any]:
    """Return the Zendesk ticket update that carries out `action`."""
    if action.type in (ActionType.ADD_INTERNAL_NOTE, ActionType.SEND_CUSTOMER_REPLY):
        parse_params(NoParams, action)
        if not action.text.strip():
            raise InvalidRequestError(f"{action.type.value}: the text is empty")
        public = action.type is ActionType.SEND_CUSTOMER_REPLY
        return {"comment": {"body": action.text, "public": public}}
    if action.type is ActionType.TAG_TICKET:
        return {"additional_tags": parse_params(TagParams, action).tags}
    if action.type is ActionType.SET_PRIORITY:
        return {"priority": parse_params(PriorityParams, action).priority}
    raise InvalidRequestError(f"zendesk: no ticket update for {action.type.value}")


class ZendeskEffector(Effector):
    """Writes notes, replies, tags and priority back to the ticket."""

    name = "zendesk"
    action_types: ClassVar[frozenset[ActionType]] = frozenset({
        ActionType.ADD_INTERNAL_NOTE, ActionType.SEND_CUSTOMER_REPLY,
        ActionType.TAG_TICKET, ActionType.SET_PRIORITY})

    def __init__(self, config: ZendeskConfig, *, policy: ResiliencePolicy, ledger: Ledger,
                 budget_s: float | None = None) -> None:
        super().__init__(policy=policy, ledger=ledger, budget_s=budget_s)
        self.client = ZendeskClient(config)

    async def _apply(self, action: EffectorAction, key: str, attempt: Attempt) -> Applied:
        if not action.ticket_id:
            raise InvalidRequestError(f"{action.type.value}: the action names no ticket")
        return await self.client.update_once(action.ticket_id, ticket_changes(action), key=key,
                                             attempt=attempt)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self.client.aclose()
