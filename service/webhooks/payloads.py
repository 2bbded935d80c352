"""What each source posts, parsed into a `Delivery` (event id + Ticket), and builders of it.

The models are tight: only the fields sleuth uses, each bounded. A body that does not
fit raises `WebhookPayloadError` naming the first field at fault. The builders
(`zendesk_body`, `intercom_body`, `generic_body`) make the bodies the parsers take back
into the same ticket, for the fields each source carries (Intercom has no low/urgent
priority and whole seconds only).

**Zendesk.** Zendesk sends what a trigger's webhook action templates. Operators configure
the JSON body `ZENDESK_TRIGGER_TEMPLATE` (docs/operations.md, "Webhooks"). The event id is
the `X-Zendesk-Webhook-Invocation-Id` header (retries of one invocation share it); when
that header is absent, the body's optional top-level `event_id` field is used.

**Intercom.** A notification (`type: notification_event`) of topic
`conversation.user.created` or `conversation.user.replied` becomes a ticket: the
conversation id, its `created_at`, `source.subject`, `source.body` (HTML, as text), the
user's replies in `conversation_parts` for a reply notification, `tags`, and `priority`
(`priority` → high). The requester is the first user/lead/contact with an email among the
source author, the replying parts' authors and `contacts`. The event id is the
notification `id`. Other topics (`ping` included) are acknowledged and ignored.

**Generic.** `{"event_id": "...", "ticket": <core.domain.Ticket as JSON>}`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, ValidationError, field_validator

from core.domain import Requester, Ticket
from service.errors import WebhookPayloadError
from service.webhooks.text import html_to_text, text_to_html

INVESTIGATED_TOPICS = frozenset({"conversation.user.created", "conversation.user.replied"})
_USERS = frozenset({"user", "lead", "contact"})
_EVENT_ID = re.compile(r"^[!-~]{1,128}$")
_PRIORITIES = {"": "normal", "-": "normal", "low": "low", "normal": "normal", "high": "high",
               "urgent": "urgent"}

ZENDESK_TRIGGER_TEMPLATE = """{
  "ticket": {
    "id": "{{ticket.id}}",
    "created_at": "{{ticket.created_at_with_timestamp}}",
    "subject": "{{ticket.title}}",
    "description": "{{ticket.description}}",
    "priority": "{{ticket.priority}}",
    "tags": "{{ticket.tags}}",
    "requester": {"name": "{{ticket.requester.name}}", "email": "{{ticket.requester.email}}"}
  }
}"""

EventId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[!-~]+$",
                               description="printable ASCII, no spaces")]
TicketId = Annotated[int, Field(ge=0)] | Annotated[str, Field(min_length=1, max_length=128)]
UnixSeconds = Annotated[int, Field(ge=0, le=253_402_300_799)]
Email = Annotated[str, Field(min_length=3, max_length=320)]
Name = Annotated[str, Field(max_length=1_000)]


@dataclass(frozen=True)
class Delivery:
    """A verified ticket event: investigate `ticket` once per `event_id`."""

    event_id: str
    ticket: Ticket


@dataclass(frozen=True)
class Ignored:
    """A verified event that is not a ticket to investigate."""

    reason: str


def payload_error(exc: ValidationError, prefix: str = "") -> WebhookPayloadError:
    """Return the error naming the first field of the body that is wrong."""
    problems = exc.errors(include_url=False, include_input=False, include_context=False)
    first = problems[0]
    if first["type"] == "json_invalid":
        return WebhookPayloadError(f"the body is not valid JSON: {first['msg']}")
    where = ".".join(p for p in (prefix, ".".join(str(x) for x in first["loc"])) if p)
    where = where or "the body"
    return WebhookPayloadError(f"{where}: {first['msg']}", field=where, problems=len(problems))


def _ticket(prefix: str, **fields: Any) -> Ticket:
    try:
        return Ticket(**fields)
    except ValidationError as exc:
        raise payload_error(exc, prefix) from None


# -- zendesk ---------------------------------------------------------------------------


class _ZendeskRequester(BaseModel):
    name: Name = ""
    email: Email


class _ZendeskTicket(BaseModel):
    id: TicketId
    created_at: AwareDatetime
    subject: str = Field(max_length=1_000)
    description: str = Field(max_length=100_000)
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    tags: Annotated[str, Field(max_length=10_000)] | list[Annotated[str, Field(
        max_length=200)]] = Field("", description="space-separated, or a list")
    requester: _ZendeskRequester

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: Any) -> Any:
        # {{ticket.priority}} renders the display name ("High"), or "-" when unset
        return _PRIORITIES.get(value.strip().lower(), value) if isinstance(value, str) else value


class ZendeskPayload(BaseModel):
    """The body of the Zendesk trigger webhook (`ZENDESK_TRIGGER_TEMPLATE`)."""

    ticket: _ZendeskTicket
    event_id: EventId | None = Field(
        None, description="used when the X-Zendesk-Webhook-Invocation-Id header is absent")


def parse_zendesk(body: bytes, invocation_id: str | None) -> Delivery:
    """Return the delivery in a Zendesk trigger body."""
    try:
        payload = ZendeskPayload.model_validate_json(body)
    except ValidationError as exc:
        raise payload_error(exc) from None
    event_id = invocation_id or payload.event_id
    if event_id is None:
        raise WebhookPayloadError("X-Zendesk-Webhook-Invocation-Id: missing, and the body has "
                                  "no event_id", field="event_id")
    if not _EVENT_ID.match(event_id):
        raise WebhookPayloadError("X-Zendesk-Webhook-Invocation-Id: not 1-128 printable "
                                  "ASCII characters without spaces", field="event_id")
    t = payload.ticket
    tags = t.tags.split() if isinstance(t.tags, str) else t.tags
    return Delivery(event_id, _ticket(
        "ticket", id=str(t.id), source="zendesk", created_at=t.created_at, subject=t.subject,
        body=t.description, requester=Requester(name=t.requester.name, email=t.requester.email),
        tags=tags, priority=t.priority))


def zendesk_body(ticket: Ticket) -> bytes:
    """Return the body the Zendesk trigger template renders for `ticket`."""
    return json.dumps({"ticket": {
        "id": ticket.id, "created_at": ticket.created_at.isoformat(), "subject": ticket.subject,
        "description": ticket.body, "priority": ticket.priority, "tags": list(ticket.tags),
        "requester": {"name": ticket.requester.name, "email": ticket.requester.email},
    }}).encode()


# -- intercom --------------------------------------------------------------------------


class _Person(BaseModel):
    type: str = ""
    name: Name | None = None
    email: Email | None = None


class _Source(BaseModel):
    subject: str | None = Field(None, max_length=1_000)
    body: str | None = Field(None, max_length=250_000, description="HTML")
    author: _Person | None = None


class _Part(BaseModel):
    part_type: str = ""
    body: str | None = Field(None, max_length=250_000, description="HTML")
    author: _Person | None = None


class _Parts(BaseModel):
    conversation_parts: list[_Part] = Field(default_factory=list, max_length=500)


class _Tag(BaseModel):
    name: str = Field(max_length=200)


class _Tags(BaseModel):
    tags: list[_Tag] = Field(default_factory=list, max_length=200)


class _Contacts(BaseModel):
    contacts: list[_Person] = Field(default_factory=list, max_length=200)


class IntercomConversation(BaseModel):
    """The fields of an Intercom conversation that make a ticket."""

    type: Literal["conversation"]
    id: TicketId
    created_at: UnixSeconds
    title: str | None = Field(None, max_length=1_000)
    source: _Source
    contacts: _Contacts | None = None
    tags: _Tags | None = None
    priority: str | None = None
    conversation_parts: _Parts | None = None


class _IntercomData(BaseModel):
    item: IntercomConversation


class IntercomEnvelope(BaseModel):
    """An Intercom notification; `data` is read once the topic is known."""

    type: Literal["notification_event"]
    id: EventId
    topic: str = Field(max_length=100)
    created_at: UnixSeconds
    data: dict[str, Any] = Field(default_factory=dict)


class IntercomNotification(BaseModel):
    """An Intercom conversation notification, as documented in the API schema."""

    type: Literal["notification_event"]
    id: EventId
    topic: Literal["conversation.user.created", "conversation.user.replied"]
    created_at: UnixSeconds
    data: _IntercomData


def parse_intercom_envelope(body: bytes) -> IntercomEnvelope:
    """Return the notification's envelope (its id, topic and signed created_at)."""
    try:
        return IntercomEnvelope.model_validate_json(body)
    except ValidationError as exc:
        raise payload_error(exc) from None


def _requester(conv: IntercomConversation, replies: list[_Part]) -> Requester:
    people = [conv.source.author] if conv.source.author else []
    people += [p.author for p in reversed(replies) if p.author]
    people += conv.contacts.contacts if conv.contacts else []
    for person in people:
        if person.type in _USERS and person.email:
            return Requester(name=person.name or "", email=person.email)
    raise WebhookPayloadError("data.item.source.author.email: no user, lead or contact with an "
                              "email address in the conversation", field="data.item.source.author")


def intercom_delivery(envelope: IntercomEnvelope) -> Delivery | Ignored:
    """Return the ticket of a conversation notification; other topics are ignored."""
    if envelope.topic not in INVESTIGATED_TOPICS:
        return Ignored(f"topic {envelope.topic!r} is not investigated")
    try:
        conv = _IntercomData.model_validate(envelope.data).item
    except ValidationError as exc:
        raise payload_error(exc, "data") from None
    parts = conv.conversation_parts.conversation_parts if conv.conversation_parts else []
    replies = [p for p in parts if p.author is not None and p.author.type in _USERS
               and p.body] if envelope.topic == "conversation.user.replied" else []
    texts = [html_to_text(conv.source.body or "")] + [html_to_text(p.body or "") for p in replies]
    return Delivery(envelope.id, _ticket(
        "data.item (as a ticket)", id=str(conv.id), source="intercom",
        created_at=datetime.fromtimestamp(conv.created_at, UTC),
        subject=conv.source.subject or conv.title or "", body="\n\n".join(texts),
        requester=_requester(conv, replies),
        tags=[t.name for t in conv.tags.tags] if conv.tags else [],
        priority="high" if conv.priority == "priority" else "normal"))


def intercom_body(ticket: Ticket, *, notification_id: str, created_at: int | datetime) -> bytes:
    """Return a `conversation.user.created` notification of `ticket`, made at `created_at`."""
    made = int(created_at.timestamp()) if isinstance(created_at, datetime) else created_at
    person = {"type": "user", "name": ticket.requester.name, "email": ticket.requester.email,
              "id": hashlib.sha256(ticket.requester.email.encode()).hexdigest()[:24]}
    item = {
        "type": "conversation", "id": ticket.id, "created_at": int(ticket.created_at.timestamp()),
        "updated_at": made, "title": None, "state": "open", "open": True,
        "priority": "priority" if ticket.priority in ("high", "urgent") else "not_priority",
        "source": {"type": "conversation", "id": f"src-{ticket.id}",
                   "delivered_as": "customer_initiated", "subject": ticket.subject,
                   "body": text_to_html(ticket.body), "author": person},
        "contacts": {"type": "contact.list",
                     "contacts": [{"type": "contact", "id": person["id"]}]},
        "tags": {"type": "tag.list",
                 "tags": [{"type": "tag", "id": str(i), "name": t}
                          for i, t in enumerate(ticket.tags, 1)]},
        "conversation_parts": {"type": "conversation_part.list", "conversation_parts": []},
    }
    return json.dumps({
        "type": "notification_event", "app_id": "sleuth", "id": notification_id,
        "topic": "conversation.user.created", "created_at": made, "delivery_attempts": 1,
        "data": {"type": "notification_event_data", "item": item},
    }).encode()


# -- generic ---------------------------------------------------------------------------


class GenericPayload(BaseModel):
    """The body of a generic delivery."""

    event_id: EventId
    ticket: Ticket


def parse_generic(body: bytes) -> Delivery:
    """Return the delivery in a generic body."""
    try:
        payload = GenericPayload.model_validate_json(body)
    except ValidationError as exc:
        raise payload_error(exc) from None
    return Delivery(payload.event_id, payload.ticket)


def generic_body(ticket: Ticket, *, event_id: str) -> bytes:
    """Return the generic body delivering `ticket` as event `event_id`."""
    return json.dumps({"event_id": event_id, "ticket": ticket.model_dump(mode="json")}).encode()
