"""Writable sandboxes of the systems the effectors write to, recording what they received.

Four APIs, each the receiving side of one effector, with that system's own
idempotency behaviour: Zendesk's ticket update (with *safe update* conflicts),
Stripe's refunds and customer balance transactions (an `Idempotency-Key` replays
the first answer and refuses other parameters), Linear's `issueCreate` executed
by graphql-core on the real schema (a caller-chosen `id` cannot be created
twice), and a PagerDuty-like paging webhook (HMAC-signed, deduplicated on
`dedup_key`). Each API's state object holds what it stored and every request it
accepted. `fail_after_apply(503)` makes the next write be applied and then
answered with an error, which is the lost answer that `sandbox.http`'s faults
(answered before the route runs) cannot simulate.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections import deque
from dataclasses import MISSING, dataclass, field, fields
from typing import Any
from urllib.parse import parse_qsl

from graphql import GraphQLError, OperationType, execute_sync, get_operation_ast, parse, validate
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.domain import Ticket
from governance.effectors.linear import LinearWriteConfig
from governance.effectors.paging import PagingConfig
from governance.effectors.stripe import StripeWriteConfig
from governance.effectors.zendesk import ZendeskConfig
from sandbox.apis.linear import linear_schema
from sandbox.cases import World
from sandbox.http import LoopbackServer

# credentials of the sandbox only; they open nothing else
ZENDESK_EMAIL = "sleuth@sandbox.invalid"
ZENDESK_TOKEN = "zd-sandbox-token-0001"  # noqa: S105
STRIPE_KEY = "rk_test_sandboxwrite0001"
LINEAR_KEY = "sandbox-write"
LINEAR_TEAM_ID = "6a0f3e52-41c3-4b0e-9d7a-0d1f4c2e9b11"
PAGING_ROUTING_KEY = "sandbox-routing-key-0001"
PAGING_SECRET = "sandbox-paging-secret-0001"  # noqa: S105
SIGNATURE_MAX_AGE_S = 300


@dataclass
class _Writable:
    """What every writable API shares: requests accepted and scripted post-write failures."""

    accepted: list[dict[str, Any]] = field(default_factory=list)
    after_apply: deque[int] = field(default_factory=deque)

    def fail_after_apply(self, *statuses: int) -> None:
        """Apply each of the next writes, then answer it with the given HTTP status."""
        self.after_apply.extend(statuses)

    def reset(self) -> None:
        """Forget everything stored and scripted (the mounted routes keep this object)."""
        for spec in fields(self):
            factory = spec.default_factory
            setattr(self, spec.name, factory() if factory is not MISSING else spec.default)

    def error_body(self, status: int) -> dict[str, Any]:
        """Return the API's error body for an injected status."""
        return {"error": f"injected {status} after the write"}

    def _answer(self, body: dict[str, Any], status: int = 200,
                headers: dict[str, str] | None = None) -> JSONResponse:
        if self.after_apply:
            failed = self.after_apply.popleft()
            return JSONResponse(self.error_body(failed), status_code=failed)
        return JSONResponse(body, status_code=status, headers=headers)


def _form(raw: bytes) -> dict[str, str]:
    return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))


def _metadata(form: dict[str, str]) -> dict[str, str]:
    return {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[") and k.endswith("]")}


# -- Zendesk ------------------------------------------------------------------------------

_TICKET_KEYS = frozenset({"comment", "tags", "additional_tags", "remove_tags", "priority",
                          "safe_update", "updated_stamp", "status"})
_PRIORITIES = frozenset({"low", "normal", "high", "urgent"})


@dataclass
class ZendeskState(_Writable):
    """Tickets by id, their comments and audits."""

    tickets: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    audits: list[dict[str, Any]] = field(default_factory=list)
    _serial: int = 1000

    def next_id(self) -> int:
        """Return a new object id."""
        self._serial += 1
        return self._serial

    def add_ticket(self, ticket_id: str, *, tags: list[str] | None = None,
                   priority: str = "normal", subject: str = "") -> dict[str, Any]:
        """Create a ticket the effectors can update."""
        stored = {"id": int(ticket_id), "subject": subject, "tags": list(tags or []),
                  "priority": priority, "status": "open", "updated_at": self._stamp()}
        self.tickets[ticket_id] = stored
        self.comments.setdefault(ticket_id, [])
        return stored

    def seed(self, ticket: Ticket) -> None:
        """Create the case's ticket."""
        self.add_ticket(ticket.id, tags=ticket.tags, priority=ticket.priority,
                        subject=ticket.subject)

    def _stamp(self) -> str:
        # strictly increasing, so that every update changes `updated_at`
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_800_000_000 + self.next_id()))


def _zendesk_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "description": description}, status_code=status)


def _zendesk_authorized(request: Request) -> bool:
    expected = base64.b64encode(f"{ZENDESK_EMAIL}/token:{ZENDESK_TOKEN}".encode()).decode()
    return hmac.compare_digest(request.headers.get("authorization", ""), f"Basic {expected}")


def _apply_ticket_update(state: ZendeskState, ticket_id: str,
                         update: dict[str, Any]) -> dict[str, Any]:
    ticket = state.tickets[ticket_id]
    events: list[dict[str, Any]] = []
    comment = update.get("comment")
    if comment is not None:
        event = {"id": state.next_id(), "type": "Comment", "body": comment["body"],
                 "public": bool(comment.get("public", True))}
        state.comments[ticket_id].append(event)
        events.append(event)
    tags = list(ticket["tags"])
    if "tags" in update:
        tags = list(update["tags"])
    tags += [t for t in update.get("additional_tags", []) if t not in tags]
    tags = [t for t in tags if t not in update.get("remove_tags", [])]
    if tags != ticket["tags"]:
        events.append({"id": state.next_id(), "type": "Change", "field_name": "tags",
                       "value": tags, "previous_value": ticket["tags"]})
        ticket["tags"] = tags
    if "priority" in update and update["priority"] != ticket["priority"]:
        events.append({"id": state.next_id(), "type": "Change", "field_name": "priority",
                       "value": update["priority"], "previous_value": ticket["priority"]})
        ticket["priority"] = update["priority"]
    ticket["updated_at"] = state._stamp()
    audit = {"id": state.next_id(), "ticket_id": int(ticket_id), "events": events}
    state.audits.append(audit)
    return audit


def _zendesk_problem(update: Any) -> str | None:
    if not isinstance(update, dict):
        return "body must be {\"ticket\": {...}}"
    unknown = set(update) - _TICKET_KEYS
    if unknown:
        return f"unknown ticket fields: {', '.join(sorted(unknown))}"
    comment = update.get("comment")
    if comment is not None and (not isinstance(comment, dict)
                                or not str(comment.get("body", "")).strip()):
        return "comment: body cannot be blank"
    if "priority" in update and update["priority"] not in _PRIORITIES:
        return "priority: is not one of low, normal, high, urgent"
    for name in ("tags", "additional_tags", "remove_tags"):
        value = update.get(name, [])
        if not isinstance(value, list) or not all(isinstance(t, str) and " " not in t
                                                  for t in value):
            return f"{name}: must be a list of tags without spaces"
    return None


def zendesk_routes(state: ZendeskState) -> list[BaseRoute]:
    """Return Zendesk's show-ticket and update-ticket routes over `state`."""

    async def show(request: Request) -> Response:
        if not _zendesk_authorized(request):
            return _zendesk_error(401, "Couldn't authenticate you", "Unauthorized")
        ticket = state.tickets.get(str(request.path_params["id"]))
        if ticket is None:
            return _zendesk_error(404, "RecordNotFound", "Not found")
        return JSONResponse({"ticket": ticket})

    async def update(request: Request) -> Response:
        if not _zendesk_authorized(request):
            return _zendesk_error(401, "Couldn't authenticate you", "Unauthorized")
        ticket_id = str(request.path_params["id"])
        ticket = state.tickets.get(ticket_id)
        if ticket is None:
            return _zendesk_error(404, "RecordNotFound", "Not found")
        try:
            payload = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _zendesk_error(400, "InvalidJSON", "body is not JSON")
        changes = payload.get("ticket") if isinstance(payload, dict) else None
        problem = _zendesk_problem(changes)
        if problem is not None:
            return _zendesk_error(422, "RecordInvalid", problem)
        assert isinstance(changes, dict)
        if changes.get("safe_update") and changes.get("updated_stamp") != ticket["updated_at"]:
            return _zendesk_error(
                409, "UpdateConflict", "Safe Update prevented the update due to outdated ticket "
                "data. Please fetch the latest ticket data and try again.")
        state.accepted.append({"ticket_id": ticket_id, "ticket": changes})
        audit = _apply_ticket_update(state, ticket_id, changes)
        return state._answer({"ticket": ticket, "audit": audit})

    return [Route("/api/v2/tickets/{id:int}.json", show, methods=["GET"]),
            Route("/api/v2/tickets/{id:int}.json", update, methods=["PUT"])]


# -- Stripe -------------------------------------------------------------------------------


@dataclass
class StripeWriteState(_Writable):
    """Charges and customers that can be refunded or credited, and what was written."""

    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    balance_transactions: list[dict[str, Any]] = field(default_factory=list)
    # idempotency key -> (request fingerprint, status, body), as Stripe keeps them for 24 h
    idempotency: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)
    replays: int = 0

    def error_body(self, status: int) -> dict[str, Any]:
        """Return Stripe's error shape (the SDK reads `error` as an object)."""
        return {"error": {"type": "api_error", "message": f"injected {status} after the write"}}

    def seed(self, world: World) -> None:
        """Take the world's charges and customers."""
        for charge in world.stripe.get("charges") or []:
            self.charges[charge["id"]] = {**charge,
                                          "amount_refunded": charge.get("amount_refunded", 0)}
        for customer in world.stripe.get("customers") or []:
            self.customers[customer["id"]] = {**customer, "balance": customer.get("balance", 0)}


def _stripe_error(status: int, message: str, *, code: str | None = None,
                  kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message,
                                   **({"code": code} if code else {})}}, status_code=status)


def _int(form: dict[str, str], name: str) -> int | None:
    raw = form.get(name)
    return int(raw) if raw is not None and raw.lstrip("-").isdigit() else None


def _create_refund(state: StripeWriteState, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    charge = state.charges.get(form.get("charge", ""))
    if charge is None:
        return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                               "message": f"No such charge: '{form.get('charge', '')[:80]}'"}}
    left = charge["amount"] - charge["amount_refunded"]
    amount = _int(form, "amount") if "amount" in form else left
    if left <= 0:
        return 400, {"error": {"type": "invalid_request_error", "code": "charge_already_refunded",
                               "message": f"Charge {charge['id']} has already been refunded."}}
    if amount is None or not 0 < amount <= left:
        return 400, {"error": {"type": "invalid_request_error", "code": "amount_too_large",
                               "message": "Refund amount is greater than unrefunded amount"}}
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
    refund = {"id": f"re_sandbox{len(state.refunds) + 1:06d}", "object": "refund",
              "amount": amount, "charge": charge["id"], "currency": charge.get("currency", "usd"),
              "customer": charge.get("customer"), "reason": form.get("reason"),
              "metadata": _metadata(form), "status": "succeeded", "created": int(time.time())}
    state.refunds.append(refund)
    return 200, refund


def _create_balance_transaction(state: StripeWriteState, customer_id: str,
                                form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    customer = state.customers.get(customer_id)
    if customer is None:
        return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                               "message": f"No such customer: '{customer_id[:80]}'"}}
    amount = _int(form, "amount")
    if amount is None or amount == 0 or not form.get("currency"):
        return 400, {"error": {"type": "invalid_request_error", "code": "parameter_invalid_integer",
                               "message": "amount must be a non-zero integer, with currency"}}
    customer["balance"] += amount
    txn = {"id": f"cbtxn_sandbox{len(state.balance_transactions) + 1:06d}",
           "object": "customer_balance_transaction", "amount": amount,
           "currency": form["currency"], "customer": customer_id, "type": "adjustment",
           "description": form.get("description"), "ending_balance": customer["balance"],
           "metadata": _metadata(form), "created": int(time.time())}
    state.balance_transactions.append(txn)
    return 200, txn


def stripe_write_routes(state: StripeWriteState) -> list[BaseRoute]:
    """Return Stripe's create-refund and create-balance-transaction routes over `state`."""

    async def handle(request: Request) -> Response:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(key, STRIPE_KEY):
            return _stripe_error(401, "Invalid API Key provided.", kind="invalid_request_error")
        form = _form(await request.body())
        fingerprint = json.dumps([request.url.path, sorted(form.items())])
        idem = request.headers.get("idempotency-key")
        if idem and idem in state.idempotency:
            first, status, body = state.idempotency[idem]
            if first != fingerprint:
                return _stripe_error(
                    400, "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with.", kind="idempotency_error")
            state.replays += 1
            return JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"})
        state.accepted.append({"path": request.url.path, "form": form, "idempotency_key": idem})
        customer = request.path_params.get("customer")
        status, body = (_create_balance_transaction(state, customer, form) if customer
                        else _create_refund(state, form))
        if idem:
            state.idempotency[idem] = (fingerprint, status, body)
        return state._answer(body, status)

    return [Route("/v1/refunds", handle, methods=["POST"]),
            Route("/v1/customers/{customer}/balance_transactions", handle, methods=["POST"])]


# -- Linear -------------------------------------------------------------------------------


@dataclass
class LinearWriteState(_Writable):
    """Issues (the world's and created ones) and one team."""

    issues: list[dict[str, Any]] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    team_id: str = LINEAR_TEAM_ID
    team_key: str = "GW"

    def seed(self, world: World) -> None:
        """Take the world's issues."""
        self.issues.extend(dict(i) for i in world.linear.get("issues") or [])

    def find(self, ref: str) -> dict[str, Any] | None:
        """Return the issue with this id or identifier."""
        for issue in self.issues:
            if ref == issue.get("id") or ref.upper() == str(issue.get("identifier", "")).upper():
                return issue
        return None


class _LinearRoot:
    """Resolvers of the write sandbox: `issueCreate` and `issue`."""

    def __init__(self, state: LinearWriteState) -> None:
        self.state = state

    def issue(self, _info: Any, id: str) -> dict[str, Any]:
        found = self.state.find(id.strip())
        if found is None:
            raise GraphQLError("Entity not found: Issue", extensions={"code": "INVALID_INPUT"})
        return found

    def issueCreate(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        if input["teamId"] != state.team_id:
            raise GraphQLError("Entity not found: Team", extensions={"code": "INVALID_INPUT"})
        issue_id = input.get("id") or str(uuid.uuid4())
        try:
            uuid.UUID(issue_id)
        except ValueError:
            raise GraphQLError("id must be a UUID", extensions={"code": "INVALID_INPUT"}) from None
        if state.find(issue_id) is not None:
            raise GraphQLError("Conflict: an entity with this id already exists",
                               extensions={"code": "INVALID_INPUT"})
        numbers = [int(str(i.get("identifier", "X-0")).rsplit("-", 1)[-1]) for i in state.issues]
        identifier = f"{state.team_key}-{max(numbers, default=0) + 1}"
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        issue: dict[str, Any] = {
            "id": issue_id, "identifier": identifier, "title": input.get("title") or "",
            "description": input.get("description"), "priority": input.get("priority") or 0,
            "url": f"https://linear.app/sandbox/issue/{identifier}",
            "createdAt": now, "updatedAt": now, "state": {"name": "Triage", "type": "triage"},
            "labels": {"nodes": []}, "team": {"key": state.team_key},
            "labelIds": input.get("labelIds") or []}
        state.issues.append(issue)
        state.created.append(issue)
        return {"success": True, "lastSyncId": float(len(state.created)), "issue": issue}


def _graphql_errors(message: str, code: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]},
                        status_code=status)


def linear_write_routes(state: LinearWriteState) -> list[BaseRoute]:
    """Return Linear's GraphQL endpoint serving `issueCreate` and `issue` on the real schema."""
    schema = linear_schema()
    allowed = {OperationType.MUTATION: {"issueCreate"}, OperationType.QUERY: {"issue"}}

    async def endpoint(request: Request) -> Response:
        if request.headers.get("authorization", "") != LINEAR_KEY:
            return _graphql_errors("Authentication required, not authenticated",
                                   "AUTHENTICATION_ERROR")
        try:
            payload = json.loads(await request.body())
            document = parse(payload["query"])
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, GraphQLError):
            return _graphql_errors("Body must hold a parseable query", "GRAPHQL_PARSE_FAILED")
        problems = validate(schema, document)
        if problems:
            return JSONResponse({"errors": [{**e.formatted, "extensions": {
                "code": "GRAPHQL_VALIDATION_FAILED"}} for e in problems]}, status_code=400)
        operation = get_operation_ast(document, payload.get("operationName"))
        fields = {s.name.value for s in operation.selection_set.selections  # type: ignore[attr-defined]
                  } if operation else set()
        if operation is None or not fields <= allowed.get(operation.operation, set()):
            return _graphql_errors("sandbox implements only issueCreate and issue",
                                   "NOT_IMPLEMENTED")
        state.accepted.append(payload)
        result = execute_sync(schema, document, root_value=_LinearRoot(state),
                              variable_values=payload.get("variables") or {},
                              operation_name=payload.get("operationName"))
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [e.formatted for e in result.errors]
        if operation.operation is OperationType.MUTATION and not result.errors:
            return state._answer(body)
        return JSONResponse(body)

    return [Route("/graphql", endpoint, methods=["POST"])]


# -- paging -------------------------------------------------------------------------------


@dataclass
class PagingState(_Writable):
    """Pages opened (one per dedup_key) and every valid event received."""

    pages: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Return the signature header value of a paging request."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"v1={digest.hexdigest()}"


def _paging_problem(event: Any) -> str | None:
    if not isinstance(event, dict) or event.get("routing_key") != PAGING_ROUTING_KEY:
        return "routing_key is missing or unknown"
    if event.get("event_action") not in ("trigger", "acknowledge", "resolve"):
        return "event_action must be trigger, acknowledge or resolve"
    payload = event.get("payload")
    if not isinstance(payload, dict) or not payload.get("summary") or not payload.get("source"):
        return "payload needs summary and source"
    if payload.get("severity") not in ("critical", "error", "warning", "info"):
        return "payload.severity must be critical, error, warning or info"
    if len(str(payload["summary"])) > 1024:
        return "payload.summary is longer than 1024 characters"
    return None


def paging_routes(state: PagingState) -> list[BaseRoute]:
    """Return the paging webhook (PagerDuty Events v2 shape, HMAC-signed) over `state`."""

    async def enqueue(request: Request) -> Response:
        body = await request.body()
        stamp = request.headers.get("x-sleuth-timestamp", "")
        given = request.headers.get("x-sleuth-signature", "")
        fresh = stamp.isdigit() and abs(time.time() - int(stamp)) <= SIGNATURE_MAX_AGE_S
        if not fresh or not hmac.compare_digest(given, signature(PAGING_SECRET, stamp, body)):
            return JSONResponse({"status": "unauthorized", "message": "bad signature"},
                                status_code=401)
        try:
            event = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            event = None
        problem = _paging_problem(event)
        if problem is not None:
            return JSONResponse({"status": "invalid event", "message": "Event object is invalid",
                                 "errors": [problem]}, status_code=400)
        dedup = str(event.get("dedup_key") or request.headers.get("idempotency-key")
                    or uuid.uuid4().hex)
        state.events.append(event)
        answer = {"status": "success", "message": "Event processed", "dedup_key": dedup}
        if dedup in state.pages:  # PagerDuty folds a repeated trigger into the open alert
            return JSONResponse(answer, status_code=202, headers={"Idempotent-Replayed": "true"})
        state.accepted.append(event)
        state.pages[dedup] = event
        return state._answer(answer, 202)

    return [Route("/v2/enqueue", enqueue, methods=["POST"])]


# -- all four -----------------------------------------------------------------------------


@dataclass
class EffectorSandbox:
    """The four writable APIs, mountable on one loopback server."""

    zendesk: ZendeskState = field(default_factory=ZendeskState)
    stripe: StripeWriteState = field(default_factory=StripeWriteState)
    linear: LinearWriteState = field(default_factory=LinearWriteState)
    paging: PagingState = field(default_factory=PagingState)

    MOUNTS = ("zendesk", "stripe_write", "linear_write", "paging")

    def seed(self, world: World, ticket: Ticket | None = None) -> EffectorSandbox:
        """Load a case's charges, customers, issues and ticket."""
        self.stripe.seed(world)
        self.linear.seed(world)
        if ticket is not None and ticket.id.isdigit():
            self.zendesk.seed(ticket)
        return self

    def reset(self) -> None:
        """Empty the four APIs (seed again afterwards)."""
        for state in (self.zendesk, self.stripe, self.linear, self.paging):
            state.reset()

    def mount(self, server: LoopbackServer) -> None:
        """Mount the four APIs on `server` (before it starts)."""
        server.mount("zendesk", zendesk_routes(self.zendesk), methods=frozenset({"GET", "PUT"}))
        server.mount("stripe_write", stripe_write_routes(self.stripe),
                     methods=frozenset({"POST"}))
        server.mount("linear_write", linear_write_routes(self.linear),
                     methods=frozenset({"POST"}))
        server.mount("paging", paging_routes(self.paging), methods=frozenset({"POST"}))


def zendesk_config(server: LoopbackServer) -> ZendeskConfig:
    """Return Zendesk effector settings pointing at the sandbox."""
    return ZendeskConfig(base_url=server.url("zendesk"), email=ZENDESK_EMAIL,
                         api_token=SecretStr(ZENDESK_TOKEN))


def stripe_write_config(server: LoopbackServer) -> StripeWriteConfig:
    """Return Stripe effector settings pointing at the sandbox."""
    return StripeWriteConfig(api_key=SecretStr(STRIPE_KEY), base_url=server.url("stripe_write"))


def linear_write_config(server: LoopbackServer) -> LinearWriteConfig:
    """Return Linear effector settings pointing at the sandbox."""
    return LinearWriteConfig(api_key=SecretStr(LINEAR_KEY), team_id=LINEAR_TEAM_ID,
                             url=f"{server.url('linear_write')}/graphql")


def paging_config(server: LoopbackServer) -> PagingConfig:
    """Return paging effector settings pointing at the sandbox."""
    return PagingConfig(url=f"{server.url('paging')}/v2/enqueue",
                        routing_key=SecretStr(PAGING_ROUTING_KEY),
                        signing_secret=SecretStr(PAGING_SECRET))
