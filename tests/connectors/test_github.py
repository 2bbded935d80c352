"""The GitHub connector against the GitHub sandbox: every operation on real cases, and faults."""

from __future__ import annotations

import copy
import json
import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from github.GithubException import (
    BadAttributeException,
    BadCredentialsException,
    GithubException,
    RateLimitExceededException,
    UnknownObjectException,
)
from pydantic import SecretStr, ValidationError

from connectors.base import Connector
from connectors.github.client import GitHubClient, retry_after_from, translate
from connectors.github.config import GitHubConfig
from connectors.registry import DisabledConnector, build_connector
from core.errors import (
    AuthError,
    BadResponseError,
    ConnectionFailedError,
    ConnectTimeoutError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    ResponseTimeoutError,
    SleuthError,
    UpstreamServerError,
)
from core.resilience import Attempt, Deadline
from core.settings import BreakerSettings, ResilienceSettings, RetrySettings, TimeoutSettings
from core.telemetry import Metrics
from sandbox.apis.github import routes, sandbox_config
from sandbox.cases import World, discover, load_case
from sandbox.http import Hang, LoopbackServer, Malformed, Status

CASES = Path(__file__).resolve().parents[2] / "evals" / "cases"
BAD_RELEASE = load_case(CASES / "pub-10-bad-release")
TICKET_AT = BAD_RELEASE.case.ticket.created_at  # 2026-08-27T16:40:00Z
FAST = ResilienceSettings(
    timeouts=TimeoutSettings(connect_s=0.5, response_s=1.0, total_budget_s=3.0),
    retry=RetrySettings(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.05, jitter_s=0.0),
    breaker=BreakerSettings(failure_threshold=3, cooldown_s=30.0),
)
Make = Callable[..., Connector]


def _synthetic_world(root: Path) -> Path:
    """Write a world with the shapes real cases lack: failures, drafts, odd payloads."""
    data = copy.deepcopy(BAD_RELEASE.world.github)
    failed = copy.deepcopy(data["deployments"][0])
    failed.update(id=9001, ref="v9.9.9", created_at="2026-08-27T16:00:00Z",
                  payload="", description=None)
    silent = copy.deepcopy(data["deployments"][0])
    silent.update(id=9002, ref="hotfix-branch", created_at="2026-08-27T16:10:00Z",
                  payload={"strategy": "canary"})
    statuses = copy.deepcopy(data["deployment_statuses"]["2020571437"])
    statuses[0].update(state="failure", created_at="2026-08-27T16:03:00Z",
                       description="Health checks failed; rolled back.")
    data["deployments"][:0] = [silent, failed]
    data["deployment_statuses"]["9001"] = statuses
    draft = copy.deepcopy(data["releases"][0])
    draft.update(id=1, tag_name="v3.0.0", name="v3.0.0", draft=True, published_at=None)
    pre = copy.deepcopy(data["releases"][0])
    pre.update(id=2, tag_name="v3.0.0-rc.1", name="RC 1", prerelease=True,
               created_at="2026-08-27T13:55:00Z", published_at="2026-08-27T14:00:00Z")
    data["releases"][:0] = [draft, pre]
    data["commits"][0]["author"] = {}  # GitHub's empty-object for an unknown author
    (root / "world").mkdir(parents=True)
    (root / "world" / "github.json").write_text(json.dumps(data), encoding="utf-8")
    return root / "world"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackServer]:
    srv = LoopbackServer()
    srv.mount("github", routes(BAD_RELEASE.world))
    for folder in discover(CASES):
        srv.mount(f"gh-{folder.name}", routes(load_case(folder).world))
    srv.mount("ghsynth", routes(World(_synthetic_world(tmp_path_factory.mktemp("synth")))))
    with srv:
        yield srv


@pytest.fixture(autouse=True)
def _reset(server: LoopbackServer) -> Iterator[None]:
    server.clear()
    yield
    server.clear()


@pytest.fixture
def make(server: LoopbackServer) -> Make:
    def build(mount: str = "github", **overrides: Any) -> Connector:
        config = sandbox_config(server.url(mount), BAD_RELEASE.world).model_copy(update=overrides)
        connector = build_connector("github", config, resilience=FAST, metrics=Metrics())
        assert isinstance(connector, Connector)
        return connector

    return build


def _window(start: str, end: datetime = TICKET_AT) -> dict[str, Any]:
    return {"since": start, "until": end.isoformat()}


def _calls(server: LoopbackServer, mount: str = "github") -> list[str]:
    return [f"{r['path']}?{r['query']}" for r in server.received(mount)]


# -- operations on real cases ----------------------------------------------------------------

async def test_deployments_name_the_bad_deploy(make: Make) -> None:
    result = await make().run("deployments", _window("2026-08-27T00:00:00Z"))
    assert result.ok and result.attempts == 1
    assert [e.ref for e in result.evidence] == ["2020571437"]
    expected = [r.ref for r in BAD_RELEASE.case.expected.evidence if r.source == "github"]
    assert expected == ["2020571437"]
    deploy = result.evidence[0]
    assert deploy.source == "github"
    assert deploy.url == "https://github.com/gatewayco/gateway/deployments/production"
    assert deploy.data | {"statuses": None} == deploy.data | {
        "id": 2020571437, "sha": "052d7fcb394db907b5db9efe8fa295c3de53d7f7", "ref": "v2.19.1",
        "environment": "production", "version": "2.19.1", "state": "success",
        "created_at": "2026-08-27T15:04:00Z", "started_at": "2026-08-27T15:04:45Z",
        "finished_at": "2026-08-27T15:09:51Z", "creator": "gw-release-bot[bot]",
        "statuses": None}
    assert [s["state"] for s in deploy.data["statuses"]] == ["success", "in_progress"]
    assert "v2.19.1" in deploy.summary and "15:04:00" in deploy.summary
    json.dumps(deploy.data)  # JSON-safe


@pytest.mark.parametrize("folder", discover(CASES), ids=lambda p: p.name)
async def test_deployments_match_every_case(folder: Path, make: Make) -> None:
    case = load_case(folder)
    until = case.case.ticket.created_at
    since = until - timedelta(days=14)
    world = case.world.github

    def created(d: dict[str, Any]) -> datetime:
        return datetime.fromisoformat(d["created_at"].replace("Z", "+00:00"))

    expected = [d for d in world["deployments"]
                if d["environment"] == "production" and since <= created(d) <= until]
    result = await make(f"gh-{folder.name}").run(
        "deployments", {"since": since.isoformat(), "until": until.isoformat(), "limit": 100})
    assert result.ok, result.error
    assert [e.ref for e in result.evidence] == [str(d["id"]) for d in expected]
    for item, raw in zip(result.evidence, expected, strict=True):
        latest = world["deployment_statuses"][str(raw["id"])][0]["state"]
        assert (item.data["sha"], item.data["ref"], item.data["state"]) == (
            raw["sha"], raw["ref"], latest)
        assert item.data["version"] == raw["payload"]["version"]


async def test_deployments_environment_ref_and_sha_filters(make: Make,
                                                           server: LoopbackServer) -> None:
    github = make()
    staging = await github.run("deployments", {**_window("2026-08-27T00:00:00Z"),
                                               "environment": "staging"})
    assert [e.ref for e in staging.evidence] == ["2020571429"]
    assert staging.evidence[0].url.endswith("/deployments/staging")
    by_ref = await github.run("deployments", {**_window("2026-08-20T00:00:00Z"), "ref": "v2.19.0"})
    assert [e.ref for e in by_ref.evidence] == ["2020571399"]
    by_sha = await github.run("deployments", {
        **_window("2026-08-20T00:00:00Z"), "sha": "48388660" + "0" * 32})
    assert by_sha.ok and by_sha.evidence == []
    assert "environment=staging" in _calls(server)[0]
    assert any("ref=v2.19.0" in call for call in _calls(server))


async def test_deployments_follow_link_pages_and_stop_at_limit(make: Make,
                                                               server: LoopbackServer) -> None:
    github = make(page_size=2)
    # the window skips the three newest production deploys: pages 2 and 3 are needed
    older = await github.run("deployments", {"since": "2026-08-01T00:00:00Z",
                                             "until": "2026-08-26T00:00:00Z"})
    assert [e.ref for e in older.evidence] == ["2020571290", "2020571274"]
    listed = [c for c in _calls(server) if c.split("?")[0].endswith("/deployments")]
    assert len(listed) == 3 and "page=3" in listed[-1]
    server.clear()
    capped = await github.run("deployments", {**_window("2026-08-01T00:00:00Z"), "limit": 3})
    assert [e.ref for e in capped.evidence] == ["2020571437", "2020571399", "2020571348"]
    listed = [c for c in _calls(server) if c.split("?")[0].endswith("/deployments")]
    assert len(listed) == 2  # the third page is never asked for


async def test_releases_in_window(make: Make) -> None:
    result = await make().run("releases", _window("2026-08-26T00:00:00Z"))
    assert [e.ref for e in result.evidence] == ["v2.19.1", "v2.19.0", "v2.18.1"]
    newest = result.evidence[0]
    assert newest.url == "https://github.com/gatewayco/gateway/releases/tag/v2.19.1"
    assert newest.data["published_at"] == "2026-08-27T12:59:00Z"
    assert "Rewrite request body parser" in newest.data["body_excerpt"]
    assert "Rewrite request body parser" in newest.summary
    limited = await make().run("releases", {**_window("2026-08-01T00:00:00Z"), "limit": 2})
    assert [e.ref for e in limited.evidence] == ["v2.19.1", "v2.19.0"]


async def test_commits_in_window_and_from_a_sha(make: Make, server: LoopbackServer) -> None:
    github = make()
    result = await github.run("commits", _window("2026-08-27T00:00:00Z"))
    assert [e.ref[:8] for e in result.evidence] == ["2c5a5013", "052d7fcb", "b55b5b35"]
    first = result.evidence[0]
    assert first.data["author"] == "Pablo Serrano" and first.data["author_login"] == "pserrano"
    assert first.data["committed_at"] == "2026-08-27T15:26:35Z"
    assert first.data["parents"] == ["052d7fcb394db907b5db9efe8fa295c3de53d7f7"]
    assert first.url == f"https://github.com/gatewayco/gateway/commit/{first.ref}"
    assert "since=2026-08-27T00%3A00%3A00Z" in _calls(server)[0]
    from_sha = await github.run("commits", {**_window("2026-08-27T00:00:00Z"),
                                            "sha": "052d7fcb394db907b5db9efe8fa295c3de53d7f7"})
    assert [e.ref[:8] for e in from_sha.evidence] == ["052d7fcb", "b55b5b35"]
    paged = make(page_size=1)
    two = await paged.run("commits", {**_window("2026-08-27T00:00:00Z"), "limit": 2})
    assert [e.ref[:8] for e in two.evidence] == ["2c5a5013", "052d7fcb"]


async def test_odd_shapes_failures_drafts_prereleases(make: Make) -> None:
    github = make("ghsynth")
    deploys = await github.run("deployments", _window("2026-08-27T12:00:00Z"))
    by_ref = {e.ref: e.data for e in deploys.evidence}
    assert list(by_ref) == ["9002", "9001", "2020571437"]
    assert by_ref["9001"]["state"] == "failure"
    assert by_ref["9001"]["finished_at"] == "2026-08-27T16:03:00Z"
    assert by_ref["9001"]["version"] == "9.9.9"  # payload was a string: taken from the tag
    assert by_ref["9002"]["state"] == "pending" and by_ref["9002"]["version"] is None
    releases = await github.run("releases", _window("2026-08-27T00:00:00Z"))
    assert [e.ref for e in releases.evidence] == ["v3.0.0-rc.1", "v2.19.1"]  # no draft
    final = await github.run("releases", {**_window("2026-08-27T00:00:00Z"),
                                          "include_prereleases": False})
    assert [e.ref for e in final.evidence] == ["v2.19.1"]
    commits = await github.run("commits", _window("2026-08-27T00:00:00Z"))
    assert commits.ok and commits.evidence[0].data["author_login"] is None


# -- faults ----------------------------------------------------------------------------------

async def test_hang_times_out_typed(make: Make, server: LoopbackServer) -> None:
    server.inject("github", Hang(5), Hang(5), Hang(5))
    started = time.monotonic()
    result = await make().run("commits", {})
    assert result.error is not None and result.error.kind == "timed_out"
    assert time.monotonic() - started < 4.5


async def test_one_hang_then_success(make: Make, server: LoopbackServer) -> None:
    server.inject("github", Hang(5))
    result = await make().run("releases", _window("2026-08-26T00:00:00Z"))
    assert result.ok and result.attempts == 2 and len(result.evidence) == 3


async def test_5xx_retried_then_typed(make: Make, server: LoopbackServer) -> None:
    server.inject("github", Status(502))
    healed = await make().run("releases", _window("2026-08-26T00:00:00Z"))
    assert healed.ok and healed.attempts == 2
    server.set_default_fault("github", Status(503))
    broken = await make().run("releases", {})
    assert broken.error is not None and broken.attempts == 3
    assert (broken.error.kind, broken.error.code) == ("unavailable", "upstream_5xx")


async def test_429_retry_after_is_honoured(make: Make, server: LoopbackServer) -> None:
    server.inject("github", Status(429, retry_after="1"))
    started = time.monotonic()
    result = await make().run("commits", _window("2026-08-27T00:00:00Z"))
    assert result.ok and result.attempts == 2
    assert time.monotonic() - started >= 1.0  # the wait GitHub asked for
    assert len(server.received("github")) == 2


async def test_403_rate_limit_is_rate_limited_not_auth(make: Make,
                                                       server: LoopbackServer) -> None:
    server.set_default_fault("github", Status(403, body={
        "message": "API rate limit exceeded for user ID 1.", "documentation_url": "x"}))
    result = await make().run("releases", {})
    assert result.error is not None
    assert (result.error.kind, result.error.code) == ("rate_limited", "rate_limited")
    assert result.attempts == 3


async def test_401_is_unauthorized(make: Make, server: LoopbackServer) -> None:
    server.inject("github", Status(401, body={"message": "Bad credentials"}))
    result = await make().run("deployments", {})
    assert result.error is not None and result.attempts == 1
    assert (result.error.kind, result.error.code) == ("unauthorized", "auth_failed")


@pytest.mark.parametrize("body", [Malformed(), Malformed('{"unexpected": true}'),
                                  Malformed('[{"id": "not-a-number"}]')])
async def test_malformed_payload_is_bad_response(make: Make, server: LoopbackServer,
                                                 body: Malformed) -> None:
    server.inject("github", body)
    result = await make().run("deployments", {})
    assert result.error is not None and result.attempts == 1
    assert result.error.kind == "bad_response"


async def test_unknown_repository_is_not_found(make: Make) -> None:
    result = await make(repository="gatewayco/nope").run("commits", {})
    assert result.error is not None and result.error.kind == "not_found"


async def test_connection_refused_is_unavailable(server: LoopbackServer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = GitHubConfig(token=SecretStr("sandbox"), base_url=f"http://127.0.0.1:{port}/github")
    connector = build_connector("github", config, resilience=FAST, metrics=Metrics())
    result = await connector.run("commits", {})
    assert result.error is not None
    assert (result.error.kind, result.error.code) == ("unavailable", "connection_failed")


async def test_breaker_opens_and_refuses_without_calling(make: Make,
                                                         server: LoopbackServer) -> None:
    github = make()
    server.set_default_fault("github", Status(503))
    first = await github.run("commits", {})
    assert first.error is not None and first.error.code == "upstream_5xx"
    reached = len(server.received("github"))
    started = time.monotonic()
    second = await github.run("commits", {})
    assert second.error is not None
    assert (second.error.kind, second.error.code) == ("unavailable", "circuit_open")
    assert len(server.received("github")) == reached
    assert time.monotonic() - started < 0.2
    assert (await github.health()).status == "down"


async def test_health(make: Make, server: LoopbackServer) -> None:
    assert (await make().health()).status == "ok"
    assert _calls(server) == ["/github/repos/gatewayco/gateway?"]


HOSTILE: list[tuple[str, dict[str, Any]]] = [
    ("deployments", {"environment": "production' OR '1'='1"}),
    ("deployments", {"environment": "../../etc/passwd"}),
    ("deployments", {"environment": "x" * 5000}),
    ("deployments", {"ref": "v1..v2"}),
    ("deployments", {"ref": "main\r\nX-Injected: 1"}),
    ("deployments", {"sha": "zzz; DROP TABLE deployments"}),
    ("deployments", {"limit": 1000}),
    ("deployments", {"limit": 0}),
    ("releases", {"limit": 10**30}),
    ("deployments", {"since": "2026-08-27T00:00:00"}),  # naive: no time zone
    ("deployments", {"since": "9999-01-01T00:00:00Z"}),
    ("deployments", {"since": "2026-08-28T00:00:00Z", "until": "2026-08-27T00:00:00Z"}),
    ("deployments", {"since": "2020-01-01T00:00:00Z", "until": "2026-08-27T00:00:00Z"}),
    ("deployments", {"owner": "someone-else"}),
    ("commits", {"sha": "-rf"}),
    ("commits", {"sha": "refs/heads/../../secret"}),
    ("commits", {"sha": "{ repository { id } }"}),
    ("releases", {"include_prereleases": "maybe"}),
    ("delete_repo", {}),
]


@pytest.mark.parametrize(("operation", "params"), HOSTILE)
async def test_hostile_parameters_refused(make: Make, server: LoopbackServer, operation: str,
                                          params: dict[str, Any]) -> None:
    result = await make().run(operation, params)
    assert result.error is not None and result.error.kind == "invalid_parameters"
    assert server.received("github") == []


async def test_missing_token_disables() -> None:
    connector = build_connector("github", GitHubConfig(), resilience=FAST, metrics=Metrics())
    assert isinstance(connector, DisabledConnector) and "token" in connector.reason
    result = await connector.run("deployments", {})
    assert result.error is not None and result.error.kind == "disabled"


@pytest.mark.parametrize("bad", [
    {"repository": "gatewayco"}, {"repository": "a/b/c"}, {"repository": "../etc"},
    {"repository": "gatewayco/.."}, {"base_url": "file:///etc/passwd"},
    {"environment": "prod; rm -rf /"},
])
def test_config_refuses_bad_values(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GitHubConfig(token=SecretStr("t"), **bad)


def test_config_missing_and_web_url() -> None:
    assert GitHubConfig().missing() == ["token"]
    assert GitHubConfig(token=SecretStr("  ")).missing() == ["token"]
    assert GitHubConfig(token=SecretStr("t")).missing() == []
    ghe = GitHubConfig(token=SecretStr("t"), base_url="https://ghe.example.com/api/v3/")
    assert ghe.base_url == "https://ghe.example.com/api/v3"
    assert ghe.web_url == "https://ghe.example.com"


# -- the sandbox itself ----------------------------------------------------------------------

async def test_sandbox_refuses_writes_and_unauthenticated_reads(server: LoopbackServer) -> None:
    base = server.url("github") + "/repos/gatewayco/gateway"
    auth = {"Authorization": "token sandbox"}
    async with httpx.AsyncClient() as http:
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            answer = await http.request(method, f"{base}/deployments", headers=auth, json={})
            assert answer.status_code == 405
        anonymous = await http.get(f"{base}/deployments")
        assert anonymous.status_code == 401
        assert anonymous.json()["message"] == "Bad credentials"
        missing = await http.get(f"{base}/deployments/12345", headers=auth)
        assert missing.status_code == 404 and missing.json()["message"] == "Not Found"
        other = await http.get(f"{server.url('github')}/nowhere", headers=auth)
        assert other.status_code == 404 and "documentation_url" in other.json()
        page = await http.get(f"{base}/deployments", headers=auth, params={"per_page": 3})
        assert len(page.json()) == 3
        assert 'rel="next"' in page.headers["link"] and "page=2" in page.headers["link"]
        assert page.json()[0]["url"].startswith(server.url("github") + "/repos/")
        bad_time = await http.get(f"{base}/commits", headers=auth, params={"since": "soon"})
        assert bad_time.status_code == 400


# -- the client: PyGithub set up for the policy, its errors translated -----------------------

def _attempt(timeout_s: float, connect_s: float) -> Attempt:
    return Attempt(number=1, timeout_s=timeout_s, connect_timeout_s=connect_s,
                   deadline=Deadline(10.0))


def test_client_turns_off_retries_and_throttling_and_sets_timeouts() -> None:
    client = GitHubClient(GitHubConfig(token=SecretStr("t")))
    gh = client.build(_attempt(0.75, 0.25), per_page=7)
    requester = gh.requester
    assert requester._Requester__timeout == (0.25, 0.75)  # type: ignore[attr-defined]
    assert requester._Requester__retry == 0  # type: ignore[attr-defined]
    assert requester._Requester__seconds_between_requests is None  # type: ignore[attr-defined]
    assert requester.per_page == 7 and requester.is_lazy


async def test_client_read_timeout_reaches_requests(server: LoopbackServer) -> None:
    # no policy around it: only the per-attempt read timeout can end this call
    server.inject("github", Hang(3))
    client = GitHubClient(sandbox_config(server.url("github"), BAD_RELEASE.world))
    started = time.monotonic()
    with pytest.raises(ResponseTimeoutError):
        await client.call(_attempt(0.3, 0.2), lambda repo: list(repo.get_releases()))
    assert time.monotonic() - started < 1.5


def _gh(exc: type[GithubException], status: int, headers: dict[str, str] | None = None,
        message: str = "boom") -> GithubException:
    return exc(status, {"message": message}, headers or {})


@pytest.mark.parametrize(("raised", "expected", "retry_after"), [
    (_gh(RateLimitExceededException, 403, {"x-ratelimit-reset": "1000010"}),
     RateLimitedError, 10.0),
    (_gh(GithubException, 429, {"Retry-After": "7"}), RateLimitedError, 7.0),
    (_gh(GithubException, 403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1000030"}),
     RateLimitedError, 30.0),
    (_gh(GithubException, 403, {"retry-after": "60"}), RateLimitedError, 60.0),
    (_gh(GithubException, 403), AuthError, None),
    (_gh(BadCredentialsException, 401), AuthError, None),
    (_gh(UnknownObjectException, 404), NotFoundError, None),
    (_gh(GithubException, 500), UpstreamServerError, None),
    (_gh(GithubException, 502), UpstreamServerError, None),
    (_gh(GithubException, 504), ResponseTimeoutError, None),
    (_gh(GithubException, 422), InvalidRequestError, None),
    (requests.exceptions.ConnectTimeout(), ConnectTimeoutError, None),
    (requests.exceptions.ReadTimeout(), ResponseTimeoutError, None),
    (requests.exceptions.ConnectionError(), ConnectionFailedError, None),
    (requests.exceptions.ChunkedEncodingError(), ConnectionFailedError, None),
    (json.JSONDecodeError("Expecting value", "{", 1), BadResponseError, None),
    (BadAttributeException("x", str, None), BadResponseError, None),
    (TypeError("string indices must be integers"), BadResponseError, None),
])
def test_translate_maps_library_errors(raised: BaseException, expected: type[SleuthError],
                                       retry_after: float | None,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_000_000.0)
    error = translate(raised)
    assert type(error) is expected
    assert getattr(error, "retry_after", None) == retry_after
    assert "sandbox" not in str(error)


def test_translate_leaves_foreign_errors_alone() -> None:
    assert translate(RuntimeError("ours")) is None
    assert retry_after_from({"x-ratelimit-reset": "nan"}) is None
    assert retry_after_from({"x-ratelimit-reset": "soon"}) is None
    assert retry_after_from({}) is None
