"""The Linear connector against the GraphQL sandbox: every case's issues, faults, hostile input."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors.base import Connector, ToolResult
from connectors.linear.config import LinearConfig
from connectors.linear.connector import GET_ISSUE_QUERY, SEARCH_ISSUES_QUERY, VIEWER_QUERY
from connectors.registry import DisabledConnector, build_connector
from core.settings import BreakerSettings, ResilienceSettings, RetrySettings, TimeoutSettings
from core.telemetry import Metrics
from sandbox.apis import linear as linear_api
from sandbox.cases import LoadedCase, load_case
from sandbox.http import Hang, LoopbackServer, Malformed, Status, json_body

CASES = Path(__file__).resolve().parents[2] / "evals" / "cases"
CASE_DIRS = sorted(p.name for p in CASES.iterdir() if (p / "case.yaml").is_file())
LOADED = {name: load_case(CASES / name) for name in CASE_DIRS}
MAIN = "pub-02-gemini-30s-timeout"  # the "linear" mount, where faults are injected
FAST = ResilienceSettings(
    timeouts=TimeoutSettings(connect_s=0.5, response_s=1.0, total_budget_s=3.0),
    retry=RetrySettings(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.01,
                        jitter_s=0.0),
    breaker=BreakerSettings(failure_threshold=3, cooldown_s=30.0),
)


@pytest.fixture(scope="module")
def module_server() -> Iterator[LoopbackServer]:
    """Serve the main case as `linear` and every case under its own folder name."""
    server = LoopbackServer()
    server.mount("linear", linear_api.routes(LOADED[MAIN].world), methods=frozenset({"POST"}))
    for name, case in LOADED.items():
        server.mount(name, linear_api.routes(case.world), methods=frozenset({"POST"}))
    with server:
        yield server


@pytest.fixture
def server(module_server: LoopbackServer) -> Iterator[LoopbackServer]:
    """Return the server with no faults and no records, cleaned after the test."""
    module_server.clear()
    yield module_server
    module_server.clear()


def make(server: LoopbackServer, case: LoadedCase, mount: str = "linear",
         **overrides: Any) -> Connector:
    """Build the Linear connector through the registry, its clock at the ticket's time."""
    config = linear_api.sandbox_config(server.url(mount), case.world)
    if overrides:
        config = config.model_copy(update=overrides)
    built = build_connector("linear", config, resilience=FAST, metrics=Metrics(),
                            clock=lambda: case.case.ticket.created_at)
    assert isinstance(built, Connector)
    return built


def refs(result: ToolResult) -> list[str]:
    """Return the refs of a successful result."""
    assert result.error is None, result.error
    return [e.ref for e in result.evidence]


async def test_known_bug_is_found_with_its_facts(server: LoopbackServer) -> None:
    conn = make(server, LOADED[MAIN])
    result = await conn.run("search_issues", {"query": "Gemini timeout", "match": "all"})
    assert refs(result) == ["GW-562"]
    found = result.evidence[0]
    assert found.source == "linear"
    assert found.url == ("https://linear.app/gatewayco/issue/GW-562/"
                         "google-provider-uses-a-30-s-deadline-instead-of-the-route-ti")
    assert found.data["state"] == "Todo" and found.data["state_type"] == "unstarted"
    assert found.data["labels"] == ["bug", "google"] and found.data["team"] == "GW"
    assert found.data["priority"] == 2 and found.data["priority_label"] == "high"
    assert found.data["created_at"] == "2026-08-07T14:05:00+00:00"
    assert found.data["open"] is True and found.data["matched_terms"] == ["gemini", "timeout"]
    assert found.data["age_days"] == pytest.approx(40.0, abs=0.01)  # ticket: 2026-09-16 14:05
    assert "Todo (unstarted)" in found.summary and "bug, google" in found.summary
    assert "opened 40 days ago" in found.summary
    json.dumps(found.data)  # JSON-safe
    ranked = await conn.run("search_issues", {"query": "the google route timeout deadline"})
    assert refs(ranked)[0] == "GW-562"  # "any" match, ranked by term hits
    assert refs(await conn.run("search_issues", {"query": "kubernetes"})) == []
    await conn.aclose()


async def test_labels_and_states_filter(server: LoopbackServer) -> None:
    case = LOADED["pub-10-bad-release"]
    conn = make(server, case, mount="pub-10-bad-release")
    result = await conn.run("search_issues", {"labels": ["incident"], "states": ["started"]})
    assert refs(result) == ["GW-677"]
    assert result.evidence[0].data["priority_label"] == "urgent"
    bugs = await conn.run("search_issues", {"labels": ["bug"], "states": ["unstarted"]})
    assert refs(bugs) == ["GW-661"]
    body = json_body(server.received("pub-10-bad-release")[-1])
    assert body["variables"]["filter"] == {"and": [
        {"labels": {"name": {"in": ["bug"]}}}, {"state": {"type": {"in": ["unstarted"]}}}]}


async def test_team_key_limits_the_search(server: LoopbackServer) -> None:
    ours = make(server, LOADED[MAIN], team_key="GW")
    assert "GW-562" in refs(await ours.run("search_issues", {"query": "timeout"}))
    body = json_body(server.received("linear")[-1])
    assert {"team": {"key": {"eq": "GW"}}} in body["variables"]["filter"]["and"]
    other = make(server, LOADED[MAIN], team_key="OPS")
    assert refs(await other.run("search_issues", {"query": "timeout"})) == []


@pytest.mark.parametrize("name", CASE_DIRS)
async def test_every_case_lists_and_reads_its_issues(server: LoopbackServer,
                                                     name: str) -> None:
    case = LOADED[name]
    issues = case.world.linear["issues"]
    conn = make(server, case, mount=name)
    listed = await conn.run("search_issues", {"limit": 50})
    assert sorted(refs(listed)) == sorted(i["identifier"] for i in issues)
    # no text: most recently updated first
    assert refs(listed)[0] == max(issues, key=lambda i: i["updatedAt"])["identifier"]
    for issue in issues:
        got = await conn.run("get_issue", {"identifier": issue["identifier"]})
        assert refs(got) == [issue["identifier"]]
        assert got.evidence[0].data["id"] == issue["id"]
        assert got.evidence[0].data["title"] == issue["title"]
        assert got.evidence[0].url == issue["url"]


async def test_sends_constant_documents_and_the_key(server: LoopbackServer) -> None:
    conn = make(server, LOADED[MAIN])
    await conn.run("search_issues", {"query": "timeout"})
    assert refs(await conn.run("get_issue", {"identifier": " gw-562 "})) == ["GW-562"]
    missing = await conn.run("get_issue", {"identifier": "GW-9999"})
    assert missing.error is not None and missing.error.kind == "not_found"
    assert missing.attempts == 1  # permanent: not retried
    assert (await conn.health()).status == "ok"
    sent = server.received("linear")
    assert [json_body(r)["query"] for r in sent] == [SEARCH_ISSUES_QUERY, GET_ISSUE_QUERY,
                                                     GET_ISSUE_QUERY, VIEWER_QUERY]
    assert all(r["headers"]["authorization"] == "sandbox" for r in sent)
    assert json_body(sent[0])["variables"]["first"] == 50


async def test_hostile_text_travels_only_in_variables(server: LoopbackServer) -> None:
    conn = make(server, LOADED[MAIN])
    hostile = '") { id } } mutation { issueDelete(id: "x") { success } } #'
    result = await conn.run("search_issues", {"query": hostile, "match": "all"})
    assert refs(result) == []
    body = json_body(server.received("linear")[-1])
    assert body["query"] == SEARCH_ISSUES_QUERY
    assert "mutation" in json.dumps(body["variables"])
    assert len(LOADED[MAIN].world.linear["issues"]) == 6  # nothing deleted
    words = " ".join(f"word{i}" for i in range(30))
    assert refs(await conn.run("search_issues", {"query": words})) == []
    terms = json.dumps(json_body(server.received("linear")[-1])["variables"])
    assert "word7" in terms and "word8" not in terms  # at most 8 terms are sent


@pytest.mark.parametrize(("operation", "params"), [
    ("get_issue", {"identifier": "GW-1; DROP TABLE issues"}),
    ("get_issue", {"identifier": "../../GW-1"}),
    ("get_issue", {"identifier": "GW-" + "9" * 50}),
    ("search_issues", {"query": "x" * 5_000}),
    ("search_issues", {"limit": 10_000}),
    ("search_issues", {"limit": 0}),
    ("search_issues", {"labels": ['bug"} } mutation {']}),
    ("search_issues", {"labels": ["bug"] * 11}),
    ("search_issues", {"states": ["deleted"]}),
    ("search_issues", {"team": "GW"}),
    ("nope", {}),
])
async def test_hostile_parameters_are_refused_before_any_request(
        server: LoopbackServer, operation: str,
        params: dict[str, Any]) -> None:
    conn = make(server, LOADED[MAIN])
    result = await conn.run(operation, params)
    assert result.error is not None and result.error.kind == "invalid_parameters"
    assert server.received("linear") == []


async def test_timeout_is_typed(server: LoopbackServer) -> None:
    conn = make(server, LOADED[MAIN])
    server.inject("linear", Hang(3))
    result = await conn.run("get_issue", {"identifier": "GW-562"}, budget_s=1.2)
    assert result.error is not None and result.error.kind == "timed_out"


async def test_5xx_and_429_are_retried_retry_after_honoured(
        server: LoopbackServer) -> None:
    conn = make(server, LOADED[MAIN])
    server.inject("linear", Status(503), Status(502))
    result = await conn.run("get_issue", {"identifier": "GW-562"})
    assert refs(result) == ["GW-562"] and result.attempts == 3
    server.inject("linear", Status(429, retry_after="1"))
    started = time.monotonic()
    result = await conn.run("get_issue", {"identifier": "GW-562"})
    assert refs(result) == ["GW-562"] and result.attempts == 2
    assert time.monotonic() - started >= 1.0


async def test_graphql_ratelimited_code_is_a_rate_limit(server: LoopbackServer) -> None:
    conn = make(server, LOADED[MAIN])
    limited = {"errors": [{"message": "Rate limit exceeded",
                           "extensions": {"code": "RATELIMITED"}}], "data": None}
    server.inject("linear", Status(400, retry_after="0.2", body=limited))
    result = await conn.run("get_issue", {"identifier": "GW-562"})
    assert refs(result) == ["GW-562"] and result.attempts == 2
    server.set_default_fault("linear", Status(400, retry_after="0.5", body=limited))
    failed = await conn.run("get_issue", {"identifier": "GW-562"})
    assert failed.error is not None and failed.error.kind == "rate_limited"
    assert failed.error.retry_after == pytest.approx(0.5)


async def test_unauthorized(server: LoopbackServer) -> None:
    conn = make(server, LOADED[MAIN])
    server.inject("linear", Status(401))
    result = await conn.run("get_issue", {"identifier": "GW-562"})
    assert result.error is not None and result.error.kind == "unauthorized"
    assert result.attempts == 1
    wrong = make(server, LOADED[MAIN], api_key=SecretStr("lin_api_wrong"))
    refused = await wrong.run("search_issues", {"query": "timeout"})
    assert refused.error is not None and refused.error.kind == "unauthorized"
    assert (await wrong.health()).status == "down"


@pytest.mark.parametrize("fault", [
    Malformed(),
    Status(200, body={"data": {"issues": {"nodes": [{"id": 1, "identifier": None}]}}}),
    Status(200, body={"data": {"issues": "nope"}}),
    Status(200, body={"something": "else"}),
])
async def test_malformed_payload_is_bad_response(server: LoopbackServer, fault: Any) -> None:
    conn = make(server, LOADED[MAIN])
    server.inject("linear", fault)
    result = await conn.run("search_issues", {"query": "timeout"})
    assert result.error is not None and result.error.kind == "bad_response"
    assert result.attempts == 1


async def test_breaker_opens_and_refuses_without_calling(server: LoopbackServer) -> None:
    conn = make(server, LOADED[MAIN])
    server.set_default_fault("linear", Status(503))
    first = await conn.run("get_issue", {"identifier": "GW-562"})
    assert first.error is not None and first.error.code == "upstream_5xx"
    calls = len(server.received("linear"))
    assert calls == 3
    started = time.monotonic()
    refused = await conn.run("get_issue", {"identifier": "GW-562"})
    assert refused.error is not None
    assert (refused.error.kind, refused.error.code) == ("unavailable", "circuit_open")
    assert time.monotonic() - started < 0.5
    assert len(server.received("linear")) == calls


async def test_sandbox_is_read_only(server: LoopbackServer) -> None:
    url = f"{server.url('linear')}/graphql"
    headers = {"Authorization": "sandbox"}
    async with httpx.AsyncClient() as client:
        for method in ("GET", "PUT", "DELETE", "PATCH"):
            answer = await client.request(method, url, headers=headers)
            assert answer.status_code == 405
        mutation = 'mutation { issueDelete(id: "GW-562") { success } }'
        answer = await client.post(url, headers=headers, json={"query": mutation})
        body = answer.json()
        assert body.get("data") is None and "read-only" in body["errors"][0]["message"]
        unknown = await client.post(url, headers=headers,
                                    json={"query": "{ issues { nodes { assignee { id } } } }"})
        assert "does not implement: Issue.assignee" in unknown.json()["errors"][0]["message"]
        anonymous = await client.post(url, json={"query": VIEWER_QUERY})
        assert anonymous.json()["errors"][0]["extensions"]["code"] == "AUTHENTICATION_ERROR"


def test_config_needs_a_key_and_is_disabled_without_it() -> None:
    assert LinearConfig().missing() == ["api_key"]
    assert LinearConfig(api_key=SecretStr("k")).missing() == []
    built = build_connector("linear", LinearConfig(), resilience=FAST, metrics=Metrics())
    assert isinstance(built, DisabledConnector)
    with pytest.raises(ValueError, match="https"):
        LinearConfig(api_key=SecretStr("k"), url="file:///etc/passwd")
    assert "lin_api_secret" not in repr(LinearConfig(api_key=SecretStr("lin_api_secret")))
    config = linear_api.sandbox_config("http://127.0.0.1:1/linear", LOADED[MAIN].world)
    assert config.url == "http://127.0.0.1:1/linear/graphql"
    assert config.api_key is not None and config.api_key.get_secret_value() == "sandbox"

