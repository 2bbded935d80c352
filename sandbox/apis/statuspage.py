"""Statuspage's public v2 API, and the manage API's incident list, over a case world.

Each page of `world.statuspage["pages"]` is served under its own id, like a
hosted page: `/{page_id}/api/v2/summary.json`, `incidents.json` and
`status.json`, in the documented v2 shapes (see
`tests/contracts/statuspage-v2.schema.json`). The manage API route
`/manage/v1/pages/{page_id}/incidents` needs `Authorization: OAuth sandbox`.
The overall indicator is derived the way Statuspage does: the worst of the
components' statuses and the unresolved incidents' impacts.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from connectors.statuspage.config import StatuspageConfig, StatusPageRef
from sandbox.cases import World

SANDBOX_KEY = "sandbox"
INDICATORS = ("none", "minor", "major", "critical")
DESCRIPTIONS = {"none": "All Systems Operational", "minor": "Minor Service Outage",
                "major": "Partial System Outage", "critical": "Major System Outage"}
_BY_COMPONENT = {"degraded_performance": "minor", "partial_outage": "major",
                 "major_outage": "critical"}
_BY_IMPACT = {"minor": "minor", "major": "major", "critical": "critical"}
UNRESOLVED = frozenset({"investigating", "identified", "monitoring"})
MAINTENANCE_ACTIVE = frozenset({"scheduled", "in_progress", "verifying"})
_PAGE_FIELDS = ("id", "name", "url", "time_zone", "updated_at")
_V2_LIMIT = 50  # incidents.json lists the 50 most recent incidents

# page-name words that name an upstream provider; the gateway's own page matches none
_PROVIDER_WORDS = (
    ("azure", "azure-openai"), ("microsoft", "azure-openai"), ("openai", "openai"),
    ("anthropic", "anthropic"), ("claude", "anthropic"), ("bedrock", "bedrock"),
    ("aws", "bedrock"), ("amazon", "bedrock"), ("gemini", "google"), ("google", "google"),
    ("vertex", "google"),
)


def provider_for(page_name: str) -> str | None:
    """Return the provider a status page covers, from its name (None: the gateway's own)."""
    low = page_name.lower()
    for word, provider in _PROVIDER_WORDS:
        if re.search(rf"\b{word}\b", low):
            return provider
    return None


def _pages(world: World) -> dict[str, dict[str, Any]]:
    return {str(p["page"]["id"]): p for p in world.statuspage.get("pages", [])}


def page_object(entry: dict[str, Any]) -> dict[str, Any]:
    """Return the `page` object of v2 responses."""
    page = entry["page"]
    return {key: page.get(key) for key in _PAGE_FIELDS}


def _is_maintenance(incident: dict[str, Any]) -> bool:
    return incident.get("impact") == "maintenance"


def _newest_first(incidents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(incidents, key=lambda i: str(i.get("created_at", "")), reverse=True)


def unresolved(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the page's incidents that are not resolved (maintenances excluded)."""
    return _newest_first([i for i in entry.get("incidents", [])
                          if not _is_maintenance(i) and i.get("status") in UNRESOLVED])


def status_of(entry: dict[str, Any]) -> dict[str, str]:
    """Return the page's overall indicator: the worst component status or open incident."""
    levels = [_BY_COMPONENT.get(str(c.get("status")), "none") for c in entry.get("components", [])]
    levels += [_BY_IMPACT.get(str(i.get("impact")), "none") for i in unresolved(entry)]
    indicator = max(levels, key=INDICATORS.index, default="none")
    return {"indicator": indicator, "description": DESCRIPTIONS[indicator]}


def summary(entry: dict[str, Any]) -> dict[str, Any]:
    """Return summary.json of one page."""
    return {
        "page": page_object(entry), "status": status_of(entry),
        "components": entry.get("components", []), "incidents": unresolved(entry),
        "scheduled_maintenances": _newest_first(
            [i for i in entry.get("incidents", [])
             if _is_maintenance(i) and i.get("status") in MAINTENANCE_ACTIVE]),
    }


def incidents(entry: dict[str, Any]) -> dict[str, Any]:
    """Return incidents.json of one page (the 50 most recent, newest first)."""
    return {"page": page_object(entry),
            "incidents": _newest_first(entry.get("incidents", []))[:_V2_LIMIT]}


def status(entry: dict[str, Any]) -> dict[str, Any]:
    """Return status.json of one page."""
    return {"page": page_object(entry), "status": status_of(entry)}


def _not_found() -> JSONResponse:
    return JSONResponse({"error": "Not found"}, status_code=404)


def routes(world: World) -> list[BaseRoute]:
    """Return the Starlette routes of every page in `world`, and the manage route."""
    pages = _pages(world)

    def public(render: Any) -> Any:
        async def endpoint(request: Request) -> JSONResponse:
            entry = pages.get(request.path_params["page_id"])
            return _not_found() if entry is None else JSONResponse(render(entry))
        return endpoint

    async def manage_incidents(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"OAuth {SANDBOX_KEY}":
            return JSONResponse({"error": "Could not authenticate"}, status_code=401)
        entry = pages.get(request.path_params["page_id"])
        if entry is None:
            return _not_found()
        try:
            limit = int(request.query_params.get("limit", "100"))
            number = int(request.query_params.get("page", "1"))
        except ValueError:
            return JSONResponse({"error": "limit and page must be integers"}, status_code=400)
        if not (1 <= limit <= 100 and number >= 1):
            return JSONResponse({"error": "limit must be 1..100, page >= 1"}, status_code=400)
        found = _newest_first(entry.get("incidents", []))
        return JSONResponse(found[(number - 1) * limit: number * limit])

    return [
        Route("/{page_id}/api/v2/summary.json", public(summary), methods=["GET"]),
        Route("/{page_id}/api/v2/incidents.json", public(incidents), methods=["GET"]),
        Route("/{page_id}/api/v2/status.json", public(status), methods=["GET"]),
        Route("/manage/v1/pages/{page_id}/incidents", manage_incidents, methods=["GET"]),
    ]


def sandbox_config(base_url: str, world: World) -> StatuspageConfig:
    """Return settings reading every page of `world` from this sandbox.

    The gateway's own page (no provider) is read through the manage API, as
    production would with the key of the page the gateway runs itself.
    """
    base = base_url.rstrip("/")
    refs: list[StatusPageRef] = []
    for page_id, entry in _pages(world).items():
        name = str(entry["page"].get("name") or page_id)
        provider = provider_for(name)
        own = provider is None
        refs.append(StatusPageRef(
            name=name, url=f"{base}/{page_id}", provider=provider,
            manage_api_key=SecretStr(SANDBOX_KEY) if own else None,
            manage_url=f"{base}/manage/v1", manage_page_id=page_id if own else None))
    return StatuspageConfig(pages=refs)
