"""The Statuspage connector: incidents and current status of the configured status pages.

Pages are read concurrently within one attempt. Partial failure is tolerated
on purpose: an investigation is better served by five providers' pages than by
none because one page is down. So the operation fails only when EVERY page
fails (raising the most retry-worthy error, so the policy retries it); otherwise
each evidence item's `data.failed_pages` names the pages that could not be read,
and each such page adds one evidence item of `data.kind == "page_unreachable"`
(ref `unreachable:<provider or name>`), so "no incidents" is never claimed for a
page that was not read.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import Field, model_validator

from connectors.base import Connector, Params, operation
from connectors.statuspage.client import Incident, StatuspageClient, Summary
from connectors.statuspage.config import StatuspageConfig, StatusPageRef
from core.domain import Evidence
from core.errors import (
    ConfigurationError,
    InvalidRequestError,
    RateLimitedError,
    SleuthError,
)
from core.resilience import Attempt, ResiliencePolicy
from core.telemetry import Metrics

T = TypeVar("T")
PROVIDER = r"^[a-z0-9][a-z0-9-]{0,31}$"
OPEN_STATUSES = frozenset({"investigating", "identified", "monitoring",
                           "scheduled", "in_progress", "verifying"})
_MAX_WINDOW = timedelta(days=366)


class _PageFilter(Params):
    provider: str | None = Field(None, pattern=PROVIDER,
                                 description="openai, anthropic, ...; 'gateway' for our own page")
    page: str | None = Field(None, max_length=100, description="a configured page name")


class IncidentsParams(_PageFilter):
    """Incidents whose lifetime overlaps [since, until] (default: the last 7 days)."""

    since: datetime | None = None
    until: datetime | None = None
    include_maintenance: bool = False
    limit: int = Field(50, ge=1, le=200)

    @model_validator(mode="after")
    def _window(self) -> IncidentsParams:
        for value in (self.since, self.until):
            if value is not None and value.tzinfo is None:
                raise ValueError("since/until need a time zone")
        if self.since and self.until and not self.since < self.until <= self.since + _MAX_WINDOW:
            raise ValueError("since must be before until, at most 366 days apart")
        return self


class CurrentStatusParams(_PageFilter):
    """The overall indicator and degraded components of each page."""


Done = list[tuple[StatusPageRef, T]]
Failed = list[tuple[StatusPageRef, SleuthError]]


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _short(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _label(page: StatusPageRef) -> str:
    return page.provider or re.sub(r"[^a-z0-9]+", "-", page.name.lower()).strip("-")


def _worst(errors: list[SleuthError]) -> SleuthError:
    """Pick the error to raise when every page failed: the most retry-worthy one."""
    limited = [e for e in errors if isinstance(e, RateLimitedError)]
    if limited:
        return max(limited, key=lambda e: e.retry_after or 0.0)
    retryable = [e for e in errors if e.retryable]
    return retryable[0] if retryable else errors[0]


class StatuspageConnector(Connector):
    """Reads status pages (public v2 JSON; the manage API where a key is configured)."""

    name = "statuspage"
    config_model = StatuspageConfig

    def __init__(self, config: StatuspageConfig, *, policy: ResiliencePolicy, metrics: Metrics,
                 clock: Callable[[], datetime] | None = None) -> None:
        if not isinstance(config, StatuspageConfig):
            raise ConfigurationError("statuspage: needs a StatuspageConfig")
        super().__init__(config, policy=policy, metrics=metrics, clock=clock)
        self._pages = list(config.pages)
        self._client = StatuspageClient()

    def _select(self, params: _PageFilter) -> list[StatusPageRef]:
        pages = self._pages
        if params.provider is not None:
            wanted = None if params.provider == "gateway" else params.provider
            pages = [p for p in pages if p.provider == wanted]
        if params.page is not None:
            pages = [p for p in pages if p.name.lower() == params.page.strip().lower()]
        if not pages:
            raise InvalidRequestError("statuspage: no configured page matches "
                                      f"provider={params.provider!r} page={params.page!r}")
        return pages

    async def _fan_out(self, pages: list[StatusPageRef],
                       fetch: Callable[[StatusPageRef], Awaitable[T]]) -> tuple[Done[T], Failed]:
        results = await asyncio.gather(*(fetch(p) for p in pages), return_exceptions=True)
        done: Done[T] = []
        failed: Failed = []
        for page, result in zip(pages, results, strict=True):
            if isinstance(result, SleuthError):
                failed.append((page, result))
            elif isinstance(result, BaseException):
                raise result  # a bug or a cancellation, not a page being down
            else:
                done.append((page, result))
        if not done:
            raise _worst([error for _, error in failed])
        return done, failed

    def _unreachable(self, failed: Failed) -> list[Evidence]:
        return [Evidence(
            source="statuspage", ref=f"unreachable:{_label(page)}",
            title=f"Status page of {page.name} could not be read",
            summary=f"{page.name}'s status page failed ({error.code}: {error.message}); "
                    "its incidents and status are unknown.",
            data={"kind": "page_unreachable", "page_name": page.name, "provider": page.provider,
                  "error_code": error.code, "error": error.message},
            url=page.url, observed_at=self.now()) for page, error in failed]

    @operation("incidents", IncidentsParams,
               "Incidents on the configured status pages overlapping a time window.")
    async def incidents(self, params: IncidentsParams, attempt: Attempt) -> list[Evidence]:
        """Return incidents (unresolved first, then newest) overlapping [since, until]."""
        until = params.until or self.now()
        since = params.since or until - timedelta(days=7)

        done, failed = await self._fan_out(
            self._select(params), lambda page: self._client.incidents(page, attempt))
        failed_names = [page.name for page, _ in failed]
        found: list[tuple[bool, datetime, Evidence]] = []
        for page, (info, incidents, api) in done:
            for incident in incidents:
                maintenance = incident.impact == "maintenance"
                if maintenance and not params.include_maintenance:
                    continue
                if incident.start > until or (incident.resolved_at is not None
                                              and incident.resolved_at < since):
                    continue
                unresolved = incident.status in OPEN_STATUSES
                evidence = self._incident_evidence(page, info, incident, api, failed_names)
                found.append((unresolved, incident.start, evidence))
        found.sort(key=lambda row: (row[0], row[1]), reverse=True)
        return [e for _, _, e in found[: params.limit]] + self._unreachable(failed)

    def _incident_evidence(self, page: StatusPageRef, info: dict[str, Any], incident: Incident,
                           api: str, failed: list[str]) -> Evidence:
        latest = max(incident.incident_updates, key=lambda u: u.created_at, default=None)
        components = [c.name for c in incident.components]
        end = incident.resolved_at
        unresolved = incident.status in OPEN_STATUSES
        minutes = round(((end or self.now()) - incident.start).total_seconds() / 60)
        ended = (f"resolved {_short(end)} after {minutes} min" if end is not None and not unresolved
                 else f"not resolved after {minutes} min")
        text = (f"{page.name} incident '{incident.name}': {incident.impact} impact, "
                f"{incident.status}; started {_short(incident.start)}, {ended}")
        text += f"; affects {', '.join(components)}." if components else "."
        if latest is not None and latest.body:
            text += f" Latest update ({latest.status}): {latest.body[:200]}"
        page_url = str(info.get("url") or page.url)
        return Evidence(
            source="statuspage", ref=incident.id, title=f"{page.name}: {incident.name}"[:200],
            summary=text, url=incident.shortlink or f"{page_url}/incidents/{incident.id}",
            observed_at=self.now(),
            data={"kind": "maintenance" if incident.impact == "maintenance" else "incident",
                  "page_id": info.get("id") or page.manage_page_id, "page_name": page.name,
                  "provider": page.provider, "incident_id": incident.id, "name": incident.name,
                  "status": incident.status, "impact": incident.impact,
                  "unresolved": unresolved, "started_at": _when(incident.start),
                  "created_at": _when(incident.created_at),
                  "monitoring_at": _when(incident.monitoring_at),
                  "resolved_at": _when(incident.resolved_at),
                  "updated_at": _when(incident.updated_at), "duration_minutes": minutes,
                  "components": components, "component_ids": [c.id for c in incident.components],
                  "latest_update": None if latest is None else {
                      "status": latest.status, "body": (latest.body or "")[:1000],
                      "created_at": _when(latest.created_at)},
                  "updates": len(incident.incident_updates), "shortlink": incident.shortlink,
                  "api": api, "failed_pages": failed})

    @operation("current_status", CurrentStatusParams,
               "Each page's overall indicator, degraded components and open incidents now.")
    async def current_status(self, params: CurrentStatusParams,
                             attempt: Attempt) -> list[Evidence]:
        """Return one evidence item per page from its summary.json."""
        done, failed = await self._fan_out(
            self._select(params), lambda page: self._client.summary(page, attempt))
        names = [page.name for page, _ in failed]
        return [self._status_evidence(page, summary, names)
                for page, summary in done] + self._unreachable(failed)

    def _status_evidence(self, page: StatusPageRef, summary: Summary,
                         failed: list[str]) -> Evidence:
        status, info = summary.status, summary.page
        degraded = [c for c in summary.components if c.status != "operational"]
        text = f"{page.name}: {status.description} (indicator {status.indicator}). "
        text += ("Degraded: " + ", ".join(f"{c.name} ({c.status})" for c in degraded) + "."
                 if degraded else "All components operational.")
        if summary.incidents:
            text += f" {len(summary.incidents)} open incident(s): " + "; ".join(
                f"{i.name} ({i.impact}, {i.status})" for i in summary.incidents[:3]) + "."
        return Evidence(
            source="statuspage", ref=info.id,
            title=f"{page.name} status: {status.description}"[:200], summary=text,
            url=info.url or page.url, observed_at=self.now(),
            data={"kind": "page_status", "page_id": info.id, "page_name": page.name,
                  "provider": page.provider, "indicator": status.indicator,
                  "description": status.description,
                  "degraded_components": [c.model_dump() for c in degraded],
                  "components_total": len(summary.components),
                  "open_incidents": [{"id": i.id, "name": i.name, "impact": i.impact,
                                      "status": i.status, "started_at": _when(i.start)}
                                     for i in summary.incidents],
                  "scheduled_maintenances": len(summary.scheduled_maintenances),
                  "updated_at": _when(info.updated_at), "failed_pages": failed})

    async def _ping(self, attempt: Attempt) -> None:
        # healthy while at least one page answers, like the operations themselves
        await self._fan_out(self._pages, lambda page: self._client.status(page, attempt))

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
