"""The Statuspage connector against the sandbox: every case's pages, partial failure, faults."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors.base import Connector, ToolResult
from connectors.registry import DisabledConnector, build_connector
from connectors.statuspage.config import StatuspageConfig, StatusPageRef
from core.settings import BreakerSettings, ResilienceSettings, RetrySettings, TimeoutSettings
from core.telemetry import Metrics
from sandbox.apis import statuspage as statuspage_api
from sandbox.cases import LoadedCase, load_case
from sandbox.http import Hang, LoopbackServer, Malformed, Status

CASES = Path(__file__).resolve().parents[2] / "evals" / "cases"
CASE_DIRS = sorted(p.name for p in CASES.iterdir() if (p / "case.yaml").is_file())
LOADED = {name: load_case(CASES / name) for name in CASE_DIRS}
MAIN = "pub-04-openai-outage"  # the "statuspage" mount, where faults are injected
OPENAI_PAGE = "oa5m2n8q4r1t"
FAST = ResilienceSettings(
    timeouts=TimeoutSettings(connect_s=0.5, response_s=1.0, total_budget_s=3.0),
    retry=RetrySettings(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.01,
                        jitter_s=0.0),
    breaker=BreakerSettings(failure_threshold=3, cooldown_s=30.0),
)


@pytest.fixture(scope="module")
def module_server() -> Iterator[LoopbackServer]:
    """Serve the main case as `statuspage` and every case under its own folder name."""
    server = LoopbackServer()
    server.mount("statuspage", statuspage_api.routes(LOADED[MAIN].world))
    for name, case in LOADED.items():
        server.mount(name, statuspage_api.routes(case.world))
    with server:
        yield server


@pytest.fixture
def server(module_server: LoopbackServer) -> Iterator[LoopbackServer]:
    """Return the server with no faults and no records, cleaned after the test."""
    module_server.clear()
    yield module_server
    module_server.clear()


def make(server: LoopbackServer, case: LoadedCase, mount: str = "statuspage",
         config: StatuspageConfig | None = None) -> Connector:
    """Build the connector through the registry, its clock at the ticket's time."""
    built = build_connector(
        "statuspage", config or statuspage_api.sandbox_config(server.url(mount), case.world),
        resilience=FAST, metrics=Metrics(), clock=lambda: case.case.ticket.created_at)
    assert isinstance(built, Connector)
    return built


def refs(result: ToolResult) -> list[str]:
    """Return the refs of a successful result."""
    assert result.error is None, result.error
    return [e.ref for e in result.evidence]


async def test_current_status_shows_the_openai_outage(server: LoopbackServer) -> None:
    conn = make(server, LOADED[MAIN])
    result = await conn.run("current_status")
    by_ref = {e.ref: e for e in result.evidence}
    assert set(refs(result)) == {p["page"]["id"]
                                 for p in LOADED[MAIN].world.statuspage["pages"]}
    openai = by_ref[OPENAI_PAGE]
    assert openai.data["provider"] == "openai" and openai.data["indicator"] == "critical"
    assert openai.data["degraded_components"] == [
        {"id": "m1ej6i9ozr2v", "name": "API", "status": "major_outage"}]
    assert [i["id"] for i in openai.data["open_incidents"]] == ["1lc1w8l2jheq"]
    assert openai.url == "https://status.openai.com"
    assert "API (major_outage)" in openai.summary and "Major System Outage" in openai.summary
    assert all(e.data["indicator"] == "none" for r, e in by_ref.items() if r != OPENAI_PAGE)
    assert by_ref["gwst8c2p1aq0"].data["provider"] is None
    json.dumps([e.data for e in result.evidence])


async def test_open_incident_comes_first_with_its_facts(server: LoopbackServer) -> None:
    case = LOADED[MAIN]
    conn = make(server, case)
    since = case.case.ticket.created_at - timedelta(hours=6)
    result = await conn.run("incidents", {"since": since, "provider": "openai"})
    assert refs(result) == ["1lc1w8l2jheq"]
    found = result.evidence[0]
    assert found.data["impact"] == "critical" and found.data["status"] == "identified"
    assert found.data["unresolved"] is True and found.data["resolved_at"] is None
    assert found.data["started_at"] == "2026-06-18T16:21:00+00:00"
    assert found.data["components"] == ["API"] and found.data["page_id"] == OPENAI_PAGE
    assert found.data["duration_minutes"] == 54  # ticket at 17:15
    assert found.data["latest_update"]["status"] == "identified"
    assert found.data["api"] == "public_v2" and found.data["failed_pages"] == []
    assert found.url is not None and found.url.startswith("https://stspg.io/")
    assert "critical impact" in found.summary and "not resolved" in found.summary
    # all pages, a week back: the open one first, then newest first
    week = await conn.run("incidents")
    assert refs(week)[0] == "1lc1w8l2jheq"
    starts = [datetime.fromisoformat(e.data["started_at"]) for e in week.evidence[1:]]
    assert starts == sorted(starts, reverse=True)


def overlapping(case: LoadedCase, since: datetime, until: datetime) -> set[str]:
    """Compute, independently of the connector, which world incidents overlap the window."""
    found = set()
    for page in case.world.statuspage["pages"]:
        for incident in page["incidents"]:
            if incident["impact"] == "maintenance":
                continue
            start = datetime.fromisoformat(incident["started_at"] or incident["created_at"])
            end = incident["resolved_at"] and datetime.fromisoformat(incident["resolved_at"])
            if start <= until and (end is None or end >= since):
                found.add(incident["id"])
    return found


@pytest.mark.parametrize("name", CASE_DIRS)
async def test_every_case_windows_and_status(server: LoopbackServer, name: str) -> None:
    case = LOADED[name]
    conn = make(server, case, mount=name)
    until = case.case.ticket.created_at
    for days in (1, 7, 30):
        since = until - timedelta(days=days)
        result = await conn.run("incidents", {"since": since, "until": until})
        assert set(refs(result)) == overlapping(case, since, until), days
    status = await conn.run("current_status")
    assert len(refs(status)) == 6
    # the gateway's own page is read through the manage API, with its key
    manage = [r for r in server.received(name) if "/manage/v1/" in r["path"]]
    assert manage and all(r["headers"]["authorization"] == "OAuth sandbox" for r in manage)


@pytest.mark.parametrize(("start", "end", "expected"), [
    ((19, 0), (19, 10), ["jpzhe5ap4u6x"]),  # OpenAI, 2026-06-10 18:33 .. 19:34
    ((17, 0), (18, 34), ["jpzhe5ap4u6x"]),
    ((19, 35), (20, 0), []),
])
async def test_window_overlap_edges(server: LoopbackServer,
                                    start: tuple[int, int], end: tuple[int, int],
                                    expected: list[str]) -> None:
    window = {"since": datetime(2026, 6, 10, *start, tzinfo=UTC),
              "until": datetime(2026, 6, 10, *end, tzinfo=UTC)}
    assert refs(await make(server, LOADED[MAIN]).run("incidents", window)) == expected


async def test_gateway_page_and_maintenance(server: LoopbackServer) -> None:
    case = LOADED["pub-10-bad-release"]
    conn = make(server, case, mount="pub-10-bad-release")
    plain = await conn.run("incidents", {"provider": "gateway"})
    assert refs(plain) == ["kj1nrfzz6j6u", "n6n13wpp0yhr"]
    assert plain.evidence[0].data["api"] == "manage_v1"
    assert plain.evidence[0].data["components"] == ["API - North America", "API - Europe"]
    both = await conn.run("incidents", {"provider": "gateway", "include_maintenance": True})
    assert "epqv4wvmdpgw" in refs(both)
    kinds = {e.ref: e.data["kind"] for e in both.evidence}
    assert kinds["epqv4wvmdpgw"] == "maintenance" and kinds["kj1nrfzz6j6u"] == "incident"
    named = await conn.run("current_status", {"page": "gatewayco platform"})
    assert refs(named) == ["gwst8c2p1aq0"] and named.evidence[0].data["indicator"] == "major"


async def test_one_failing_page_leaves_the_others(server: LoopbackServer) -> None:
    conn = make(server, LOADED[MAIN])
    server.inject("statuspage", Status(503))
    result = await conn.run("current_status")
    assert result.error is None and result.attempts == 1
    unreachable = [e for e in result.evidence if e.data["kind"] == "page_unreachable"]
    assert len(unreachable) == 1 and unreachable[0].data["error_code"] == "upstream_5xx"
    assert unreachable[0].ref.startswith("unreachable:")
    pages = [e for e in result.evidence if e.data["kind"] == "page_status"]
    assert len(pages) == 5
    assert all(e.data["failed_pages"] == [unreachable[0].data["page_name"]] for e in pages)


async def test_all_pages_failing_fails_the_call(server: LoopbackServer) -> None:
    conn = make(server, LOADED[MAIN])
    server.set_default_fault("statuspage", Status(500))
    result = await conn.run("incidents")
    assert result.error is not None and result.error.kind == "unavailable"
    assert result.evidence == []


async def test_5xx_and_429_are_retried_retry_after_honoured(
        server: LoopbackServer) -> None:
    conn = make(server, LOADED[MAIN])
    server.inject("statuspage", Status(502))
    result = await conn.run("incidents", {"provider": "openai"})
    assert "1lc1w8l2jheq" in refs(result) and result.attempts == 2
    server.inject("statuspage", Status(429, retry_after="1"))
    started = time.monotonic()
    result = await conn.run("current_status", {"provider": "openai"})
    assert refs(result) == [OPENAI_PAGE] and result.attempts == 2
    assert time.monotonic() - started >= 1.0


async def test_unauthorized(server: LoopbackServer) -> None:
    case = LOADED[MAIN]
    conn = make(server, case)
    server.inject("statuspage", Status(401))
    result = await conn.run("incidents", {"provider": "openai"})
    assert result.error is not None and result.error.kind == "unauthorized"
    base = server.url("statuspage")
    wrong = StatuspageConfig(pages=[StatusPageRef(
        name="Gatewayco Platform", url=f"{base}/gwst8c2p1aq0",
        manage_api_key=SecretStr("not-the-key"), manage_url=f"{base}/manage/v1",
        manage_page_id="gwst8c2p1aq0")])
    refused = await make(server, case, config=wrong).run("incidents")
    assert refused.error is not None and refused.error.kind == "unauthorized"
    assert refused.attempts == 1


@pytest.mark.parametrize(("fault", "kind"), [
    (Hang(3), "timed_out"),
    (Status(403), "unauthorized"),
    (Malformed(), "bad_response"),
    (Status(200, body={"page": {"id": "x"}, "incidents": "none"}), "bad_response"),
    (Status(200, body={"page": {"id": "x"}, "incidents": [{"id": "i", "status": "resolved"}]}),
     "bad_response"),
])
async def test_single_page_faults_are_typed(server: LoopbackServer,
                                            fault: Any, kind: str) -> None:
    conn = make(server, LOADED[MAIN])
    server.inject("statuspage", fault)
    result = await conn.run("incidents", {"provider": "openai"}, budget_s=1.2)
    assert result.error is not None and result.error.kind == kind
    assert result.attempts == 1


async def test_breaker_opens_and_refuses_without_calling(server: LoopbackServer) -> None:
    conn = make(server, LOADED[MAIN])
    server.set_default_fault("statuspage", Status(503))
    first = await conn.run("current_status", {"provider": "openai"})
    assert first.error is not None and first.error.code == "upstream_5xx"
    calls = len(server.received("statuspage"))
    assert calls == 3
    refused = await conn.run("current_status", {"provider": "openai"})
    assert refused.error is not None
    assert (refused.error.kind, refused.error.code) == ("unavailable", "circuit_open")
    assert len(server.received("statuspage")) == calls


@pytest.mark.parametrize(("operation", "params"), [
    ("incidents", {"provider": "../../etc/passwd"}),
    ("incidents", {"provider": "OpenAI; DROP"}),
    ("incidents", {"page": "x" * 500}),
    ("incidents", {"since": "2026-06-01T00:00:00"}),  # naive
    ("incidents", {"since": "2026-06-10T00:00:00Z", "until": "2026-06-01T00:00:00Z"}),
    ("incidents", {"since": "2020-01-01T00:00:00Z", "until": "2026-06-01T00:00:00Z"}),
    ("incidents", {"limit": 10**9}),
    ("incidents", {"provider": "mistral"}),  # valid, but no such page: refused locally
    ("current_status", {"page": "../../admin"}),
    ("current_status", {"url": "http://169.254.169.254/"}),
])
async def test_hostile_parameters_are_refused_before_any_request(
        server: LoopbackServer, operation: str,
        params: dict[str, Any]) -> None:
    conn = make(server, LOADED[MAIN])
    result = await conn.run(operation, params)
    assert result.error is not None and result.error.kind == "invalid_parameters"
    assert server.received("statuspage") == []


async def test_health_and_read_only_sandbox(server: LoopbackServer) -> None:
    assert (await make(server, LOADED[MAIN]).health()).status == "ok"
    base = server.url("statuspage")
    async with httpx.AsyncClient() as client:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            answer = await client.request(method, f"{base}/{OPENAI_PAGE}/api/v2/incidents.json")
            assert answer.status_code == 405
        answer = await client.post(f"{base}/manage/v1/pages/gwst8c2p1aq0/incidents",
                                   headers={"Authorization": "OAuth sandbox"}, json={})
        assert answer.status_code == 405
        assert (await client.get(f"{base}/nosuchpage/api/v2/summary.json")).status_code == 404


def test_sandbox_config_maps_page_names_to_providers() -> None:
    config = statuspage_api.sandbox_config("http://127.0.0.1:1/statuspage", LOADED[MAIN].world)
    assert {p.name: p.provider for p in config.pages} == {
        "Gatewayco Platform": None, "OpenAI": "openai", "Anthropic": "anthropic",
        "Azure OpenAI": "azure-openai", "AWS Bedrock": "bedrock", "Google Gemini": "google"}
    assert [p.uses_manage_api for p in config.pages].count(True) == 1
    assert statuspage_api.provider_for("Microsoft Azure") == "azure-openai"
    assert statuspage_api.provider_for("Google Cloud") == "google"
    assert StatuspageConfig().missing() == ["pages"]
    assert isinstance(build_connector("statuspage", StatuspageConfig(), resilience=FAST,
                                      metrics=Metrics()), DisabledConnector)
    with pytest.raises(ValueError, match="https"):
        StatusPageRef(name="x", url="file:///etc/passwd")
    with pytest.raises(ValueError, match="manage_page_id"):
        StatusPageRef(name="x", url="https://s.example", manage_api_key=SecretStr("k"))
