"""The GitHub connector: deployments (with statuses), releases and commits in a time window.

Every list is bounded twice: at most `limit` results, and at most `_MAX_PAGES`
pages scanned, so an old window on a busy repository costs a few requests, not
thousands. Filtering GitHub cannot do (a deployment's or release's time) is
done here while reading pages newest first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any
from urllib.parse import quote

from github.GitRelease import GitRelease
from github.Repository import Repository
from pydantic import AwareDatetime, Field, field_validator, model_validator

from connectors.base import Connector, ConnectorConfig, Params, operation
from connectors.github.client import GitHubClient
from connectors.github.config import GitHubConfig, check_environment
from core.domain import Evidence
from core.errors import ConfigurationError
from core.resilience import Attempt, ResiliencePolicy
from core.telemetry import Metrics

_MAX_PAGES = 5
_LOOKBACK = timedelta(days=7)
_MAX_WINDOW = timedelta(days=366)
_MAX_STATUSES = 10
_GIT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
_SHA = re.compile(r"^[0-9a-f]{7,40}$")
_STARTED = ("queued", "pending", "in_progress")
_FINISHED = ("success", "failure", "error")


def _git_ref(value: str | None) -> str | None:
    # git's own bans that matter here: no "..", no ".lock" suffix, no trailing "/" or "."
    if value is not None and (not _GIT_REF.match(value) or ".." in value
                              or value.endswith((".lock", "/", "."))):
        raise ValueError("must be a branch, tag or sha: letters, digits, '.', '_', '/', '-'")
    return value


class WindowParams(Params):
    """A time window (default: the 7 days before `until`, itself default now) and a limit."""

    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    limit: int = Field(20, ge=1, le=100)

    @field_validator("since", "until")
    @classmethod
    def _github_range(cls, value: datetime | None) -> datetime | None:
        # GitHub only answers for 1970-2099; outside it, results are undefined
        if value is not None and not 1970 <= value.astimezone(UTC).year <= 2099:
            raise ValueError("must fall between 1970 and 2099")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> WindowParams:
        if self.since is not None and self.until is not None:
            if self.since > self.until:
                raise ValueError("since must not be after until")
            if self.until - self.since > _MAX_WINDOW:
                raise ValueError("the window may span at most 366 days")
        return self

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """Return (since, until) in UTC, filling in the defaults."""
        until = (self.until or now).astimezone(UTC)
        since = (self.since or until - _LOOKBACK).astimezone(UTC)
        return since, until


class DeploymentsParams(WindowParams):
    """Deployments to an environment (default: the configured one), optionally of one ref/sha."""

    environment: str | None = None
    ref: str | None = None
    sha: str | None = Field(None, pattern=_SHA.pattern)

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: str | None) -> str | None:
        return None if value is None else check_environment(value)

    @field_validator("ref")
    @classmethod
    def _ref(cls, value: str | None) -> str | None:
        return _git_ref(value)


class ReleasesParams(WindowParams):
    """Releases published in the window; drafts never, prereleases unless excluded."""

    include_prereleases: bool = True


class CommitsParams(WindowParams):
    """Commits in the window, on a branch or from a sha (default: the default branch)."""

    sha: str | None = None

    @field_validator("sha")
    @classmethod
    def _branch_or_sha(cls, value: str | None) -> str | None:
        return _git_ref(value)


def _raw(obj: Any) -> dict[str, Any]:
    # the JSON the object was built from; unlike `raw_data`, reading it never
    # triggers PyGithub's lazy "complete" request for fields a list left out
    raw = getattr(obj, "_rawData", None)
    return raw if isinstance(raw, dict) else {}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _login(value: Any) -> str | None:
    login = value.get("login") if isinstance(value, dict) else None
    return login if isinstance(login, str) else None


def _version(payload: Any, ref: str) -> str | None:
    if isinstance(payload, dict) and isinstance(payload.get("version"), str):
        return str(payload["version"])
    match = re.match(r"^v?(\d+\.\d+\.\d+\S*)$", ref)
    return match.group(1) if match else None


def _first_line(text: str | None, width: int = 200) -> str:
    return (text or "").strip().splitlines()[0][:width] if (text or "").strip() else ""


def _notes(body: str, width: int = 200) -> str:
    # release notes are markdown: skip headings, keep the first few items as one line
    items = [line.strip().lstrip("-*+ ").strip() for line in body.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    return "; ".join(items[:3])[:width]


class GitHubConnector(Connector):
    """Reads the gateway repository's deploy history from GitHub (read-only)."""

    name = "github"
    config_model = GitHubConfig

    def __init__(self, config: ConnectorConfig, *, policy: ResiliencePolicy, metrics: Metrics,
                 clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(config, policy=policy, metrics=metrics, clock=clock)
        if not isinstance(config, GitHubConfig):
            raise ConfigurationError(f"github: expected GitHubConfig, got {type(config).__name__}")
        self.settings = config
        self.client = GitHubClient(config)

    def _cap(self) -> int:
        return _MAX_PAGES * self.settings.page_size

    def _evidence(self, ref: str, title: str, summary: str, data: dict[str, Any],
                  url: str | None) -> Evidence:
        return Evidence(source="github", ref=ref, title=title[:200], summary=summary, data=data,
                        url=url, observed_at=self.now())

    @operation("deployments", DeploymentsParams,
               "Deployments to production (or `environment`) created in a window, newest "
               "first, each with its latest state, status times, sha, ref and version.")
    async def deployments(self, params: DeploymentsParams, attempt: Attempt) -> list[Evidence]:
        """Return one evidence item per deployment in the window."""
        since, until = params.window(self.now())
        environment = params.environment or self.settings.environment
        filters = {k: v for k, v in (("ref", params.ref), ("sha", params.sha)) if v is not None}

        def fetch(repo: Repository) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            listing = repo.get_deployments(environment=environment, **filters)
            for dep in islice(listing, self._cap()):
                if dep.created_at > until:
                    continue
                if dep.created_at < since:
                    break  # GitHub lists deployments newest first
                # built from our own base URL, not the URL in the payload
                statuses = repo.get_deployment(dep.id).get_statuses().get_page(0)
                history = [{"state": s.state, "created_at": _iso(s.created_at),
                            "description": (s.description or "")[:200],
                            "log_url": _raw(s).get("log_url") or s.target_url or None}
                           for s in statuses[:_MAX_STATUSES]]
                found.append({
                    "id": dep.id, "sha": dep.sha, "ref": dep.ref, "task": dep.task,
                    "environment": dep.environment, "created_at": _iso(dep.created_at),
                    "updated_at": _iso(dep.updated_at), "description": dep.description,
                    "creator": _login(_raw(dep).get("creator")),
                    "version": _version(_raw(dep).get("payload"), dep.ref),
                    "state": history[0]["state"] if history else "pending",
                    "started_at": next((h["created_at"] for h in reversed(history)
                                        if h["state"] in _STARTED), None),
                    "finished_at": next((h["created_at"] for h in history
                                         if h["state"] in _FINISHED), None),
                    "log_url": history[0]["log_url"] if history else None,
                    "status_count": len(history), "statuses": history,
                })
                if len(found) >= params.limit:
                    break
            return found

        page = quote(environment, safe="")
        url = f"{self.settings.web_url}/{self.settings.repository}/deployments/{page}"
        return [self._evidence(
            str(d["id"]), f"Deploy {d['ref']} to {d['environment']}: {d['state']}",
            f"Deployment {d['id']} of {d['ref']} (version {d['version'] or 'unknown'}, "
            f"{d['sha'][:7]}) to {d['environment']} was created at {d['created_at']}"
            f"{' by ' + d['creator'] if d['creator'] else ''}; latest status {d['state']}"
            f"{' at ' + d['statuses'][0]['created_at'] if d['statuses'] else ''}.",
            d, url) for d in await self.client.call(attempt, fetch)]

    @operation("releases", ReleasesParams,
               "Releases published in a window, newest first (drafts excluded): tag, name, "
               "time, prerelease flag and the start of the notes.")
    async def releases(self, params: ReleasesParams, attempt: Attempt) -> list[Evidence]:
        """Return one evidence item per release published in the window."""
        since, until = params.window(self.now())

        def keep(rel: GitRelease) -> bool:
            published = rel.published_at
            return (not rel.draft and published is not None and since <= published <= until
                    and (params.include_prereleases or not rel.prerelease))

        def fetch(repo: Repository) -> list[dict[str, Any]]:
            # release order follows creation, not publication: no early stop, only the cap
            kept = (r for r in islice(repo.get_releases(), self._cap()) if keep(r))
            return [{
                "id": r.id, "tag_name": r.tag_name, "name": r.name,
                "published_at": _iso(r.published_at), "created_at": _iso(r.created_at),
                "prerelease": r.prerelease, "target_commitish": r.target_commitish,
                "author": _login(_raw(r).get("author")), "body_excerpt": (r.body or "")[:500],
                "html_url": r.html_url,
            } for r in islice(kept, params.limit)]

        return [self._evidence(
            r["tag_name"],
            f"Release {r['tag_name']}" + (" (prerelease)" if r["prerelease"] else ""),
            f"Release {r['tag_name']} ({r['name'] or 'untitled'}) was published at "
            f"{r['published_at']}{' by ' + r['author'] if r['author'] else ''}"
            f"{': ' + _notes(r['body_excerpt']) if _notes(r['body_excerpt']) else ''}.",
            r, r["html_url"]) for r in await self.client.call(attempt, fetch)]

    @operation("commits", CommitsParams,
               "Commits in a window on the default branch (or `sha`), newest first: sha, "
               "first line of the message, author and dates.")
    async def commits(self, params: CommitsParams, attempt: Attempt) -> list[Evidence]:
        """Return one evidence item per commit in the window."""
        since, until = params.window(self.now())
        branch = {"sha": params.sha} if params.sha is not None else {}

        def fetch(repo: Repository) -> list[dict[str, Any]]:
            listing = repo.get_commits(since=since, until=until, **branch)
            found: list[dict[str, Any]] = []
            for c in islice(listing, params.limit):  # GitHub filters the window itself
                raw = _raw(c).get("commit") or {}
                author, committer = raw.get("author") or {}, raw.get("committer") or {}
                found.append({
                    "sha": c.sha, "message": _first_line(c.commit.message),
                    "author": author.get("name"), "author_login": _login(_raw(c).get("author")),
                    "authored_at": author.get("date"), "committed_at": committer.get("date"),
                    "parents": [p.get("sha") for p in _raw(c).get("parents") or []
                                if isinstance(p, dict)],
                    "html_url": c.html_url,
                })
            return found

        per_page = min(params.limit, self.settings.page_size)
        return [self._evidence(
            c["sha"], f"Commit {c['sha'][:7]}: {c['message'][:80]}",
            f"Commit {c['sha'][:7]} by {c['author'] or c['author_login'] or 'unknown'}, "
            f"committed at {c['committed_at']}: {c['message']}.",
            c, c["html_url"]) for c in await self.client.call(attempt, fetch, per_page=per_page)]

    async def _ping(self, attempt: Attempt) -> None:
        await self.client.ping(attempt)
