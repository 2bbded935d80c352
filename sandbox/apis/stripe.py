"""Stripe's read API over a case world: lists, customer search and retrieval in Stripe's shapes.

Lists are sorted newest first and paginated with `limit`, `starting_after` and
`ending_before` as Stripe does; unknown parameters, bad limits and unsupported
search queries get `400` in Stripe's error shape; a missing bearer key gets
`401`. Only the subset of the search query language the connector uses is
understood: `field:'value'` clauses on `email`, `name` and `metadata['key']`,
joined by `AND`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.stripe.config import StripeConfig
from sandbox.cases import World

_PAGING = frozenset({"limit", "starting_after", "ending_before"})
_SUB_STATUSES = frozenset({"active", "past_due", "unpaid", "canceled", "incomplete",
                           "incomplete_expired", "trialing", "paused", "all", "ended"})
_INVOICE_STATUSES = frozenset({"draft", "open", "paid", "uncollectible", "void"})

# resource path -> (world key, object name, query parameters that filter by equality)
_RESOURCES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "customers": ("customers", "customer", ("email",)),
    "subscriptions": ("subscriptions", "subscription", ("customer", "status", "price")),
    "invoices": ("invoices", "invoice", ("customer", "status", "subscription")),
    "charges": ("charges", "charge", ("customer", "payment_intent")),
    "refunds": ("refunds", "refund", ("charge", "payment_intent")),
}

# one search clause: field, then a single- or double-quoted value with backslash escapes
_CLAUSE = re.compile(
    r"""\s*(?P<field>email|name|metadata\[(?P<q>['"])(?P<key>[A-Za-z0-9_.-]{1,40})(?P=q)\])"""
    r"""\s*:\s*(?P<quote>['"])(?P<value>(?:\\.|(?!(?P=quote)).)*)(?P=quote)\s*""",
)

Handler = Callable[[Request], Awaitable[Response]]


class _StripeHTTPError(Exception):
    """An error answered in Stripe's JSON error shape."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 param: str | None = None, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": kind, "message": message,
                               **({"code": code} if code else {}),
                               **({"param": param} if param else {})}}


def _guarded(handler: Handler) -> Handler:
    """Refuse requests without a bearer key, and render errors in Stripe's shape."""

    async def run(request: Request) -> Response:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not key.strip():
                raise _StripeHTTPError(
                    401, "You did not provide an API key. You need to provide your API key "
                    "in the Authorization header, using Bearer auth.")
            return await handler(request)
        except _StripeHTTPError as exc:
            return JSONResponse(exc.body, status_code=exc.status)

    return run


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "10")
    try:
        value = int(raw)
    except ValueError:
        raise _StripeHTTPError(400, f"Invalid integer: {raw[:40]}",
                               code="parameter_invalid_integer", param="limit") from None
    if not 1 <= value <= 100:
        raise _StripeHTTPError(400, "This value must be between 1 and 100.",
                               code="parameter_invalid_integer", param="limit")
    return value


def _refuse_unknown(request: Request, allowed: frozenset[str]) -> None:
    for name in request.query_params:
        if name not in allowed:
            raise _StripeHTTPError(400, f"Received unknown parameter: {name[:60]}",
                                   code="parameter_unknown", param=name[:60])


def _newest_first(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda o: (o.get("created", 0), o.get("id", "")), reverse=True)


def _page(items: list[dict[str, Any]], request: Request, url: str) -> dict[str, Any]:
    """Cut one page out of newest-first `items` the way Stripe's cursors do."""
    limit = _limit(request)
    after = request.query_params.get("starting_after")
    before = request.query_params.get("ending_before")
    if after and before:
        raise _StripeHTTPError(400, "You may only specify one of these parameters: "
                               "ending_before, starting_after.", param="starting_after")
    ids = [o.get("id") for o in items]
    for cursor, param in ((after, "starting_after"), (before, "ending_before")):
        if cursor and cursor not in ids:
            raise _StripeHTTPError(400, f"No such object: '{cursor[:80]}'",
                                   code="resource_missing", param=param)
    if after:
        window = items[ids.index(after) + 1:]
        data = window[:limit]
    elif before:
        window = items[:ids.index(before)]
        data = window[-limit:]
    else:
        window = items
        data = window[:limit]
    return {"object": "list", "data": data, "has_more": len(window) > limit, "url": url}


def _matches(obj: dict[str, Any], name: str, value: str) -> bool:
    if name == "status" and obj.get("object") == "subscription":
        if value == "all":
            return True
        if value == "ended":
            return obj.get("status") in ("canceled", "incomplete_expired")
    return obj.get(name) == value


def _list_route(resource: str, world: World) -> Route:
    key, _, filters = _RESOURCES[resource]
    items = _newest_first(list(world.stripe.get(key) or []))
    allowed = _PAGING | set(filters)
    url = f"/v1/{resource}"

    async def endpoint(request: Request) -> Response:
        _refuse_unknown(request, frozenset(allowed))
        chosen = [o for o in items if all(
            _matches(o, f, request.query_params[f]) for f in filters if f in request.query_params)]
        status = request.query_params.get("status")
        if resource == "subscriptions":
            if status is not None and status not in _SUB_STATUSES:
                raise _StripeHTTPError(400, f"Invalid status: {status[:40]}", param="status")
            if status is None:  # Stripe leaves canceled subscriptions out unless asked
                chosen = [o for o in chosen
                          if o.get("status") not in ("canceled", "incomplete_expired")]
        if resource == "invoices" and status is not None and status not in _INVOICE_STATUSES:
            raise _StripeHTTPError(400, f"Invalid status: {status[:40]}", param="status")
        return JSONResponse(_page(chosen, request, url))

    return Route(url, _guarded(endpoint), methods=["GET"])


def _retrieve_route(resource: str, world: World) -> Route:
    key, object_name, _ = _RESOURCES[resource]
    by_id = {o.get("id"): o for o in world.stripe.get(key) or []}

    async def endpoint(request: Request) -> Response:
        _refuse_unknown(request, frozenset({"expand[]"}))
        found = by_id.get(request.path_params["id"])
        if found is None:
            raise _StripeHTTPError(
                404, f"No such {object_name}: '{request.path_params['id'][:80]}'",
                code="resource_missing", param="id")
        return JSONResponse(found)

    return Route(f"/v1/{resource}/{{id}}", _guarded(endpoint), methods=["GET"])


def parse_search_query(query: str) -> list[tuple[str, str]]:
    """Parse the supported subset of Stripe's search language into (field, value) clauses."""
    clauses: list[tuple[str, str]] = []
    rest = query
    while True:
        match = _CLAUSE.match(rest)
        if match is None:
            raise _StripeHTTPError(400, f"Invalid or unsupported search query: {query[:120]!r}",
                                   code="parameter_invalid_string", param="query")
        field = f"metadata.{match['key']}" if match["key"] else match["field"]
        clauses.append((field, re.sub(r"\\(.)", r"\1", match["value"])))
        rest = rest[match.end():]
        if not rest:
            return clauses
        if not rest.startswith("AND "):
            raise _StripeHTTPError(400, f"Invalid or unsupported search query: {query[:120]!r}",
                                   code="parameter_invalid_string", param="query")
        rest = rest[4:]


def _search_hit(customer: dict[str, Any], field: str, value: str) -> bool:
    if field.startswith("metadata."):
        return (customer.get("metadata") or {}).get(field[9:]) == value
    found = customer.get(field)
    # Stripe matches email and name case-insensitively
    return isinstance(found, str) and found.lower() == value.lower()


def _search_route(world: World) -> Route:
    customers = _newest_first(list(world.stripe.get("customers") or []))

    async def endpoint(request: Request) -> Response:
        _refuse_unknown(request, frozenset({"query", "limit", "page"}))
        query = request.query_params.get("query", "")
        if not query.strip():
            raise _StripeHTTPError(400, "Missing required param: query.",
                                   code="parameter_missing", param="query")
        clauses = parse_search_query(query.strip())
        hits = [c for c in customers if all(_search_hit(c, f, v) for f, v in clauses)]
        limit = _limit(request)
        page = request.query_params.get("page")
        start = int(page[5:]) if page and re.fullmatch(r"page_\d{1,6}", page) else 0
        data = hits[start:start + limit]
        more = len(hits) > start + limit
        return JSONResponse({"object": "search_result", "data": data, "has_more": more,
                             "next_page": f"page_{start + limit}" if more else None,
                             "url": "/v1/customers/search"})

    return Route("/v1/customers/search", _guarded(endpoint), methods=["GET"])


def routes(world: World) -> list[BaseRoute]:
    """Return the Stripe read routes serving `world.stripe` (paths relative to the mount)."""
    # search must come before /v1/customers/{id}, which would swallow it
    found: list[BaseRoute] = [_search_route(world)]
    for resource in _RESOURCES:
        found += [_list_route(resource, world), _retrieve_route(resource, world)]
    return found


def sandbox_config(base_url: str, world: World) -> StripeConfig:
    """Return the connector config pointing at the sandbox mounted at `base_url`."""
    return StripeConfig(api_key=SecretStr("sandbox"), base_url=base_url)
