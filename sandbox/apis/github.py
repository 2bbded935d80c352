"""GitHub's REST API over a case world: exactly the reads the GitHub connector (PyGithub) makes.

Served: the repository, deployments (filters `environment`, `sha`, `ref`,
`task`), one deployment, its statuses, releases and commits (`since`, `until`,
`sha`), newest first, paginated with `per_page`/`page` and `Link` headers as
GitHub does. API URLs inside objects point at the sandbox itself, as GitHub
Enterprise's point at its own host, so following them stays here. A request
without a token gets `401 Bad credentials`; anything unknown gets GitHub's
`404 Not Found` shape.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from math import ceil
from typing import Any
from urllib.parse import urlencode

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.github.config import GitHubConfig
from sandbox.cases import World

API_ROOT = "https://api.github.com"
WEB_ROOT = "https://github.com"
DOCS = "https://docs.github.com/rest"
_TOKEN = re.compile(r"^(token|bearer) \S+$", re.IGNORECASE)
_DEFAULT_BRANCHES = frozenset({"main", "HEAD"})

Handler = Callable[[Request, str], Awaitable[Response]]


class _GitHubHTTPError(Exception):
    """An error answered in GitHub's shape: {"message", "documentation_url", "status"}."""

    def __init__(self, status: int, message: str, docs: str = DOCS) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"message": message, "documentation_url": docs, "status": str(status)}


def _api_base(request: Request) -> str:
    # the mount's own root (e.g. http://127.0.0.1:PORT/github), not the app's
    return f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}"


def _localise(value: Any, api: str) -> Any:
    """Return `value` with api.github.com URLs pointing at the sandbox's API root."""
    if isinstance(value, str):
        return api + value[len(API_ROOT):] if value.startswith(API_ROOT + "/") else value
    if isinstance(value, list):
        return [_localise(v, api) for v in value]
    if isinstance(value, dict):
        return {k: _localise(v, api) for k, v in value.items()}
    return value


def _int(raw: str | None, default: int, low: int, high: int) -> int:
    # GitHub ignores a per_page/page it cannot read and clamps per_page to 100
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        return default
    return min(max(value, low), high) if value >= low else default


def _paginated(request: Request, items: list[dict[str, Any]]) -> Response:
    per_page = _int(request.query_params.get("per_page"), 30, 1, 100)
    page = _int(request.query_params.get("page"), 1, 1, 1_000_000)
    last = max(1, ceil(len(items) / per_page))
    base = str(request.url.replace(query=""))

    def link(number: int, rel: str) -> str:
        query = {**dict(request.query_params), "page": str(number)}
        return f'<{base}?{urlencode(query)}>; rel="{rel}"'

    links = []
    if page > 1:
        links += [link(page - 1, "prev"), link(1, "first")]
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    chunk = items[(page - 1) * per_page: page * per_page]
    headers = {"Link": ", ".join(links)} if links else {}
    return JSONResponse(_localise(chunk, _api_base(request)), headers=headers)


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _newest_first(items: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> list[
        dict[str, Any]]:
    floor = datetime.min.replace(tzinfo=UTC)
    return sorted(items, key=lambda o: (_when(key(o)) or floor, o.get("id") or 0), reverse=True)


def _user(login: str, *, kind: str, api: str) -> dict[str, Any]:
    uid = zlib.crc32(login.encode()) % 100_000_000 + 1
    url = f"{api}/users/{login}"
    return {
        "login": login, "id": uid, "node_id": f"O_kgDO{uid:08d}", "gravatar_id": "",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4", "url": url,
        "html_url": f"{WEB_ROOT}/{login}", "followers_url": f"{url}/followers",
        "following_url": f"{url}/following{{/other_user}}", "gists_url": f"{url}/gists{{/gist_id}}",
        "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{url}/subscriptions", "organizations_url": f"{url}/orgs",
        "repos_url": f"{url}/repos", "events_url": f"{url}/events{{/privacy}}",
        "received_events_url": f"{url}/received_events", "type": kind, "site_admin": False,
    }


_REPO_LINKS = {
    "archive_url": "/{archive_format}{/ref}", "assignees_url": "/assignees{/user}",
    "blobs_url": "/git/blobs{/sha}", "branches_url": "/branches{/branch}",
    "collaborators_url": "/collaborators{/collaborator}", "comments_url": "/comments{/number}",
    "commits_url": "/commits{/sha}", "compare_url": "/compare/{base}...{head}",
    "contents_url": "/contents/{+path}", "contributors_url": "/contributors",
    "deployments_url": "/deployments", "downloads_url": "/downloads", "events_url": "/events",
    "forks_url": "/forks", "git_commits_url": "/git/commits{/sha}",
    "git_refs_url": "/git/refs{/sha}", "git_tags_url": "/git/tags{/sha}", "hooks_url": "/hooks",
    "issue_comment_url": "/issues/comments{/number}",
    "issue_events_url": "/issues/events{/number}", "issues_url": "/issues{/number}",
    "keys_url": "/keys{/key_id}", "labels_url": "/labels{/name}", "languages_url": "/languages",
    "merges_url": "/merges", "milestones_url": "/milestones{/number}",
    "notifications_url": "/notifications{?since,all,participating}",
    "pulls_url": "/pulls{/number}", "releases_url": "/releases{/id}",
    "stargazers_url": "/stargazers", "statuses_url": "/statuses/{sha}",
    "subscribers_url": "/subscribers", "subscription_url": "/subscription", "tags_url": "/tags",
    "teams_url": "/teams", "trees_url": "/git/trees{/sha}",
}


def repository_object(full_name: str, commits: list[dict[str, Any]], api: str) -> dict[str, Any]:
    """Return a plausible `full-repository` object for `full_name` (a private org repository)."""
    owner, name = full_name.split("/", 1)
    rid = zlib.crc32(full_name.encode()) % 900_000_000 + 100_000_000
    url = f"{api}/repos/{full_name}"
    pushed = max((c.get("commit", {}).get("committer", {}).get("date") or "" for c in commits),
                 default="") or "2024-01-15T09:00:00Z"
    org = _user(owner, kind="Organization", api=api)
    return {
        "id": rid, "node_id": f"R_kgDO{rid:09d}", "name": name, "full_name": full_name,
        "owner": org, "organization": org, "private": True, "visibility": "private",
        "html_url": f"{WEB_ROOT}/{full_name}", "description": "The gateway service",
        "fork": False, "url": url, **{k: url + v for k, v in _REPO_LINKS.items()},
        "git_url": f"git://github.com/{full_name}.git",
        "ssh_url": f"git@github.com:{full_name}.git",
        "clone_url": f"{WEB_ROOT}/{full_name}.git", "svn_url": f"{WEB_ROOT}/{full_name}",
        "mirror_url": None, "homepage": None, "language": "Go", "license": None,
        "forks": 0, "forks_count": 0, "stargazers_count": 0, "watchers": 0, "watchers_count": 0,
        "size": 48_213, "default_branch": "main", "open_issues": 0, "open_issues_count": 0,
        "is_template": False, "topics": [], "has_issues": True, "has_projects": False,
        "has_wiki": False, "has_pages": False, "has_downloads": True, "has_discussions": False,
        "archived": False, "disabled": False, "pushed_at": pushed,
        "created_at": "2021-03-02T10:00:00Z", "updated_at": pushed,
        "permissions": {"admin": False, "maintain": False, "push": False, "triage": False,
                        "pull": True},
        "allow_forking": False, "web_commit_signoff_required": False,
        "network_count": 0, "subscribers_count": 12,
    }


class _GitHubApi:
    """The handlers, over one world's GitHub data."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.full_name = str(data.get("repository") or "gatewayco/gateway")
        self.deployments = _newest_first(list(data.get("deployments") or []),
                                         lambda d: d.get("created_at"))
        self.statuses = {str(k): _newest_first(list(v or []), lambda s: s.get("created_at"))
                         for k, v in (data.get("deployment_statuses") or {}).items()}
        self.releases = _newest_first(list(data.get("releases") or []),
                                      lambda r: r.get("created_at"))
        self.commits = _newest_first(list(data.get("commits") or []),
                                     lambda c: c.get("commit", {}).get("committer", {}).get("date"))

    def guarded(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Refuse a request without a token or for another repository, in GitHub's shapes."""

        async def run(request: Request) -> Response:
            try:
                if not _TOKEN.match(request.headers.get("authorization", "")):
                    raise _GitHubHTTPError(401, "Bad credentials")
                owner, repo = request.path_params.get("owner"), request.path_params.get("repo")
                if f"{owner}/{repo}".lower() != self.full_name.lower():
                    raise _GitHubHTTPError(404, "Not Found")
                return await handler(request, _api_base(request))
            except _GitHubHTTPError as exc:
                return JSONResponse(exc.body, status_code=exc.status)

        return run

    def _deployment(self, raw_id: str) -> dict[str, Any]:
        found = next((d for d in self.deployments if str(d.get("id")) == raw_id), None)
        if found is None:
            raise _GitHubHTTPError(404, "Not Found", f"{DOCS}/deployments/deployments")
        return found

    async def repository(self, request: Request, api: str) -> Response:
        """Serve GET /repos/{owner}/{repo}."""
        return JSONResponse(repository_object(self.full_name, self.commits, api))

    async def list_deployments(self, request: Request, api: str) -> Response:
        """Serve GET /repos/{owner}/{repo}/deployments with equality filters."""
        query = request.query_params
        wanted = {k: query[k] for k in ("environment", "sha", "ref", "task") if k in query}
        return _paginated(request, [d for d in self.deployments
                                    if all(str(d.get(k)) == v for k, v in wanted.items())])

    async def deployment(self, request: Request, api: str) -> Response:
        """Serve GET /repos/{owner}/{repo}/deployments/{deployment_id}."""
        return JSONResponse(_localise(self._deployment(request.path_params["id"]), api))

    async def list_statuses(self, request: Request, api: str) -> Response:
        """Serve GET /repos/{owner}/{repo}/deployments/{deployment_id}/statuses."""
        found = self._deployment(request.path_params["id"])
        return _paginated(request, self.statuses.get(str(found.get("id")), []))

    async def list_releases(self, request: Request, api: str) -> Response:
        """Serve GET /repos/{owner}/{repo}/releases."""
        return _paginated(request, self.releases)

    async def list_commits(self, request: Request, api: str) -> Response:
        """Serve GET /repos/{owner}/{repo}/commits with `sha`, `since` and `until`."""
        query = request.query_params
        bounds: dict[str, datetime] = {}
        for name in ("since", "until"):
            if name in query:
                parsed = _when(query[name])
                if parsed is None:
                    raise _GitHubHTTPError(400, f"Invalid value for '{name}': {query[name][:40]}")
                bounds[name] = parsed
        commits = self.commits
        start = query.get("sha")
        if start and start not in _DEFAULT_BRANCHES:
            index = next((i for i, c in enumerate(commits)
                          if len(start) >= 4 and str(c.get("sha", "")).startswith(start)), None)
            if index is None:
                raise _GitHubHTTPError(404, f"No commit found for SHA: {start[:80]}")
            commits = commits[index:]  # that commit and the older ones before it

        def inside(commit: dict[str, Any]) -> bool:
            # git filters on the committer date, not the author date
            when = _when(commit.get("commit", {}).get("committer", {}).get("date"))
            return when is not None and (bounds.get("since") or when) <= when <= (
                bounds.get("until") or when)

        return _paginated(request, [c for c in commits if inside(c)])


async def _not_found(request: Request) -> Response:
    return JSONResponse({"message": "Not Found", "documentation_url": DOCS, "status": "404"},
                        status_code=404)


def routes(world: World) -> list[BaseRoute]:
    """Return the Starlette routes of the GitHub sandbox over `world`."""
    api = _GitHubApi(world.github)
    repo = "/repos/{owner}/{repo}"
    return [
        Route(repo, api.guarded(api.repository), methods=["GET"]),
        Route(f"{repo}/deployments", api.guarded(api.list_deployments), methods=["GET"]),
        Route(f"{repo}/deployments/{{id}}", api.guarded(api.deployment), methods=["GET"]),
        Route(f"{repo}/deployments/{{id}}/statuses", api.guarded(api.list_statuses),
              methods=["GET"]),
        Route(f"{repo}/releases", api.guarded(api.list_releases), methods=["GET"]),
        Route(f"{repo}/commits", api.guarded(api.list_commits), methods=["GET"]),
        Route("/{path:path}", _not_found),
    ]


def sandbox_config(base_url: str, world: World) -> GitHubConfig:
    """Return the connector config pointing at the sandbox (a fixed fake token)."""
    return GitHubConfig(token=SecretStr("sandbox"), base_url=base_url,
                        repository=str(world.github.get("repository") or "gatewayco/gateway"))
