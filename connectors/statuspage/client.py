"""A thin HTTP client for Statuspage: public v2 JSON, and the manage API when a key is set.

The public endpoints (`/api/v2/summary.json`, `/api/v2/incidents.json`,
`/api/v2/status.json`) need no credentials. The manage API
(`GET {manage_url}/pages/{page_id}/incidents`, `Authorization: OAuth <key>`)
is used for incidents only when the page has a key. One request per call:
the core policy is the only retry loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors.statuspage.config import StatusPageRef
from core.errors import (
    BadResponseError,
    error_for_status,
    parse_retry_after,
)
from core.http import transport_error
from core.resilience import Attempt

M = TypeVar("M", bound=BaseModel)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @field_validator("*")
    @classmethod
    def _aware(cls, value: Any) -> Any:
        # timestamps without an offset are UTC (comparing naive with aware would fail)
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Component(_Model):
    """A component of a page."""

    id: str
    name: str
    status: str


class Update(_Model):
    """One update of an incident."""

    status: str
    body: str | None = ""
    created_at: datetime


class Incident(_Model):
    """An incident or maintenance (public v2 and manage v1 share these fields)."""

    id: str
    name: str
    status: str
    impact: str
    created_at: datetime
    updated_at: datetime | None = None
    started_at: datetime | None = None
    monitoring_at: datetime | None = None
    resolved_at: datetime | None = None
    scheduled_for: datetime | None = None
    shortlink: str | None = None
    incident_updates: list[Update] = Field(default_factory=list)
    components: list[Component] = Field(default_factory=list)

    @property
    def start(self) -> datetime:
        """Return when the incident began (maintenances: when work started)."""
        return self.started_at or self.scheduled_for or self.created_at


class PageInfo(_Model):
    """The `page` object of a v2 response."""

    id: str
    name: str = ""
    url: str | None = None
    updated_at: datetime | None = None


class Status(_Model):
    """The overall status indicator."""

    indicator: str
    description: str


class Summary(_Model):
    """summary.json: page, status, components, unresolved incidents, maintenances."""

    page: PageInfo
    status: Status
    components: list[Component] = Field(default_factory=list)
    incidents: list[Incident] = Field(default_factory=list)
    scheduled_maintenances: list[dict[str, Any]] = Field(default_factory=list)


def _parse(model: type[M], body: Any, where: str) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        raise BadResponseError(f"statuspage {where}: {path}: {first['msg']}") from None


class StatuspageClient:
    """Reads Statuspage JSON with the attempt's timeouts; raises sleuth errors."""

    def __init__(self) -> None:
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            # an httpx pool belongs to the event loop that opened its connections
            self._http = httpx.AsyncClient(
                headers={"Accept": "application/json", "User-Agent": "sleuth-statuspage/1"},
                follow_redirects=False, transport=httpx.AsyncHTTPTransport(retries=0))
            self._loop = loop
        return self._http

    async def get_json(self, url: str, attempt: Attempt, *, where: str,
                       headers: dict[str, str] | None = None,
                       params: dict[str, str] | None = None) -> Any:
        """GET `url` and return its decoded JSON body."""
        timeout = httpx.Timeout(attempt.timeout_s, connect=attempt.connect_timeout_s)
        try:
            response = await self._client().get(url, headers=headers, params=params,
                                                 timeout=timeout)
        except httpx.HTTPError as exc:
            raise transport_error(f"statuspage {where}", exc) from None
        if response.status_code >= 400:
            raise error_for_status(
                response.status_code, f"statuspage {where}: HTTP {response.status_code}",
                retry_after=parse_retry_after(response.headers.get("retry-after")))
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadResponseError(f"statuspage {where}: body is not JSON") from None

    async def summary(self, page: StatusPageRef, attempt: Attempt) -> Summary:
        """Return the page's summary.json (status, components, unresolved incidents)."""
        body = await self.get_json(f"{page.url}/api/v2/summary.json", attempt, where=page.name)
        return _parse(Summary, body, f"{page.name} summary.json")

    async def status(self, page: StatusPageRef, attempt: Attempt) -> dict[str, Any]:
        """Return the page's status.json (the overall indicator only)."""
        body = await self.get_json(f"{page.url}/api/v2/status.json", attempt, where=page.name)
        if not isinstance(body, dict) or not isinstance(body.get("status"), dict):
            raise BadResponseError(f"statuspage {page.name}: status.json has no status")
        return body

    async def incidents(self, page: StatusPageRef,
                        attempt: Attempt) -> tuple[dict[str, Any], list[Incident], str]:
        """Return (page object or {}, incidents, which API) for one page."""
        if page.uses_manage_api and page.manage_api_key is not None:
            key = page.manage_api_key.get_secret_value()
            body = await self.get_json(
                f"{page.manage_url}/pages/{page.manage_page_id}/incidents", attempt,
                where=page.name, headers={"Authorization": f"OAuth {key}"},
                params={"limit": "100"})
            if not isinstance(body, list):
                raise BadResponseError(f"statuspage {page.name}: manage API did not list")
            return {}, [_parse(Incident, i, page.name) for i in body], "manage_v1"
        body = await self.get_json(f"{page.url}/api/v2/incidents.json", attempt,
                                   where=page.name)
        if not isinstance(body, dict) or not isinstance(body.get("incidents"), list):
            raise BadResponseError(f"statuspage {page.name}: incidents.json has no incidents")
        info = body.get("page")
        incidents = [_parse(Incident, i, page.name) for i in body["incidents"]]
        return (info if isinstance(info, dict) else {}), incidents, "public_v2"

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        if self._http is not None:
            # RuntimeError: its event loop is gone, and the sockets went with it
            with contextlib.suppress(RuntimeError):
                await self._http.aclose()
            self._http = None
