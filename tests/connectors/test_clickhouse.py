"""The ClickHouse connector on the cases' request logs (chDB and HTTP), faults, hostile input."""
# ruff: noqa: S608  (test SQL names the generated test databases; values are still bound)

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import clickhouse_connect
import httpx
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from connectors.base import ToolResult
from connectors.clickhouse.client import ClickHouseClient
from connectors.clickhouse.config import ClickHouseConfig
from connectors.clickhouse.connector import ClickHouseConnector
from connectors.registry import DisabledConnector, build_connector
from core.resilience import Attempt
from core.resilience.policy import Deadline
from core.settings import BreakerSettings, ResilienceSettings, RetrySettings, TimeoutSettings
from core.telemetry import Metrics
from sandbox.apis import clickhouse as api
from sandbox.cases import LoadedCase, load_case
from sandbox.http import Hang, LoopbackServer, Malformed, Status
from sandbox.models import closed_port

CASES = Path(__file__).resolve().parents[2] / "evals" / "cases"
FAST = ResilienceSettings(
    timeouts=TimeoutSettings(connect_s=0.5, response_s=1.0, total_budget_s=3.0),
    retry=RetrySettings(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.01, jitter_s=0),
    breaker=BreakerSettings(failure_threshold=3, cooldown_s=30),
)
DAY = timedelta(hours=24)


@dataclass
class Loaded:
    case: LoadedCase
    database: str
    rows: list[dict[str, Any]]

    @property
    def until(self) -> datetime:
        return self.case.case.ticket.created_at

    def window(self, ws: str | None, since: datetime) -> list[dict[str, Any]]:
        """Return the rows of `ws` (None: all) in [since, until): the test's own oracle."""
        return [r for r in self.rows if (ws is None or r["workspace_id"] == ws)
                and since <= ts(r) < self.until]


def ts(row: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(row["ts"]).replace(tzinfo=UTC)


def iso(row: dict[str, Any]) -> str:
    return row["ts"].replace(" ", "T") + "Z"


@pytest.fixture(scope="module")
def engine() -> Any:
    return clickhouse_connect.get_client(interface="chdb")


@pytest.fixture(scope="module")
def worlds(engine: Any) -> Iterator[dict[str, Loaded]]:
    """Load every case's request log into a database of its own."""
    loaded: dict[str, Loaded] = {}
    for folder in sorted(p for p in CASES.iterdir() if (p / "case.yaml").is_file()):
        case = load_case(folder)
        database = api.database_name(case.id)
        api.load_world(engine, case.world, database=database)
        loaded[case.id] = Loaded(case, database, list(case.world.request_rows()))
    yield loaded
    for item in loaded.values():
        api.drop_world(engine, item.database)


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer()
    # ClickHouse's HTTP interface takes queries by POST; writes are refused by readonly=2
    srv.mount("clickhouse", api.http_routes(), methods=frozenset({"GET", "POST", "HEAD"}))
    with srv:
        yield srv


@pytest.fixture
def ch(server: LoopbackServer) -> LoopbackServer:
    server.clear()
    return server


def build(config: ClickHouseConfig) -> ClickHouseConnector:
    connector = build_connector("clickhouse", config, resilience=FAST, metrics=Metrics())
    assert isinstance(connector, ClickHouseConnector)
    return connector


def ok(result: ToolResult) -> ToolResult:
    assert result.error is None, result.error
    for item in result.evidence:
        json.dumps(item.data)  # evidence data must be JSON-safe
        assert item.source == "clickhouse" and item.summary
    return result


def by_ref(result: ToolResult) -> dict[str, Any]:
    return {e.ref: e for e in result.evidence}


# -- operations on real cases ----------------------------------------------------------


async def test_error_timeline_finds_payment_required(worlds: dict[str, Loaded]) -> None:
    w = worlds["pub-06-card-declined"]
    since = w.until - DAY
    result = ok(await build(api.sandbox_config(w.database)).run(
        "error_timeline", {"workspace_id": "ws_birchwood", "since": since, "until": w.until}))
    rows = w.window("ws_birchwood", since)
    hits = [r for r in rows if r["error_code"] == "payment_required"]
    refs = by_ref(result)
    timeline = refs["timeline:ws_birchwood"].data
    assert timeline["requests"] == len(rows) == sum(b["requests"] for b in timeline["buckets"])
    assert timeline["errors"] == sum(r["status"] >= 400 for r in rows)
    err = refs["errors:payment_required"]
    assert err.data["count"] == len(hits) == 59
    assert err.data["first_seen"] == iso(hits[0]) == "2026-02-17T12:34:08.999Z"
    assert err.data["requests_since_first"] == sum(ts(r) >= ts(hits[0]) for r in rows)
    assert err.data["providers"] == dict(Counter(r["provider"] for r in hits))
    assert "59 of 59 requests (100%) failed with 402 payment_required since 2026-02-17 12:34 UTC" \
        in err.summary


async def test_timeline_says_when_row_limit_cut_it(worlds: dict[str, Loaded]) -> None:
    w = worlds["pub-06-card-declined"]
    config = ClickHouseConfig(database=w.database, row_limit=5)
    result = ok(await build(config).run("error_timeline", {
        "workspace_id": "ws_birchwood", "since": w.until - DAY, "until": w.until}))
    assert result.evidence[0].data["truncated"] is True
    assert len(result.evidence[0].data["buckets"]) <= 5
    assert "only the first 5 result rows" in result.evidence[0].summary


async def test_top_error_codes_names_the_rejected_key(worlds: dict[str, Loaded]) -> None:
    w = worlds["pub-09-key-rotated"]
    since = w.until - DAY
    result = ok(await build(api.sandbox_config(w.database)).run(
        "top_error_codes", {"workspace_id": "ws_girasol", "since": since, "until": w.until,
                            "limit": 3}))
    data = result.evidence[0].data
    rows = w.window("ws_girasol", since)
    assert result.evidence[0].ref == "top_errors:ws_girasol"
    assert len(data["top"]) == 3 and data["requests"] == len(rows)
    first = data["top"][0]
    expected = [r for r in rows if r["error_code"] == "invalid_api_key"
                and r["provider"] == "anthropic"]
    assert (first["error_code"], first["status"], first["count"]) == ("invalid_api_key", 401,
                                                                      len(expected))
    assert first["api_key_ids"] == ["key_63da"]
    assert first["share"] == round(len(expected) / len(rows), 4)


async def test_latency_percentiles_show_the_30s_gemini_timeouts(worlds: dict[str, Loaded]) -> None:
    w = worlds["pub-02-gemini-30s-timeout"]
    since = w.until - DAY
    result = ok(await build(api.sandbox_config(w.database)).run(
        "latency_percentiles", {"workspace_id": "ws_jetty", "since": since, "until": w.until}))
    data = result.evidence[0].data
    latencies = sorted(r["latency_ms"] for r in w.window("ws_jetty", since))
    n = len(latencies)
    # quantileExact takes the element at floor(level * n) of the sorted values
    assert (data["requests"], data["p50_ms"], data["p99_ms"]) == (
        n, latencies[n // 2], latencies[min(n - 1, int(0.99 * n))])
    gemini = next(g for g in data["by_model"] if g["model"] == "gemini-2.5-pro")
    assert gemini["p99_ms"] >= 30_000 and gemini["errors"] > 0


async def test_first_occurrence_and_last_success(worlds: dict[str, Loaded]) -> None:
    w = worlds["pub-06-card-declined"]
    since = w.until - DAY
    connector = build(api.sandbox_config(w.database))
    result = ok(await connector.run("first_occurrence", {
        "workspace_id": "ws_birchwood", "status": 402, "since": since, "until": w.until}))
    rows = w.window("ws_birchwood", since)
    first = next(r for r in rows if r["status"] == 402)
    last_ok = [r for r in rows if r["status"] < 400 and ts(r) < ts(first)][-1]
    data = result.evidence[0].data
    assert result.evidence[0].ref == "first_seen:ws_birchwood:402"
    assert data["first_seen"] == iso(first) and data["last_success_before"] == iso(last_ok)
    assert data["successes_since_first"] == 0 and data["count"] == 59
    none = ok(await connector.run("first_occurrence", {
        "workspace_id": "ws_birchwood", "error_code": "quota_exceeded", "since": since,
        "until": w.until}))
    assert none.evidence[0].data["count"] == 0 and "saw no" in none.evidence[0].summary


async def test_spike_scope_global_release_and_isolated_card(worlds: dict[str, Loaded]) -> None:
    release = worlds["pub-10-bad-release"]
    since = release.until - timedelta(hours=3)
    result = ok(await build(api.sandbox_config(release.database)).run("spike_scope", {
        "error_code": "internal_error", "since": since, "until": release.until,
        "workspace_id": "ws_inkwell"}))
    data = result.evidence[0].data
    rows = release.window(None, since)
    assert result.evidence[0].ref == "scope:internal_error"
    assert data["scope"] == "global"
    assert data["workspaces_with_traffic"] == len({r["workspace_id"] for r in rows})
    assert data["hits"] == sum(r["error_code"] == "internal_error" for r in rows)
    assert data["workspace"]["hits"] == sum(r["error_code"] == "internal_error"
                                            and r["workspace_id"] == "ws_inkwell" for r in rows)
    card = worlds["pub-06-card-declined"]
    isolated = ok(await build(api.sandbox_config(card.database)).run("spike_scope", {
        "status": 402, "since": card.until - DAY, "until": card.until}))
    data = isolated.evidence[0].data
    assert (data["scope"], data["workspaces_affected"]) == ("isolated", 1)
    assert data["top_workspaces"][0]["workspace_id"] == "ws_birchwood"


async def test_traffic_by_version_flags_the_bad_release(worlds: dict[str, Loaded]) -> None:
    w = worlds["pub-10-bad-release"]
    since = w.until - DAY
    result = ok(await build(api.sandbox_config(w.database)).run(
        "traffic_by_version", {"since": since, "until": w.until}))
    refs = by_ref(result)
    rows = [r for r in w.window(None, since) if r["gateway_version"] == "2.19.1"]
    outlier = refs["version:2.19.1"].data
    assert outlier["first_seen"] == iso(rows[0]) and outlier["requests"] == len(rows)
    assert outlier["errors"] == sum(r["status"] >= 400 for r in rows)
    assert "internal_error" in outlier["top_error_codes"]
    versions = [v["gateway_version"] for v in refs["versions:all"].data["versions"]]
    assert versions == ["2.18.1", "2.19.0", "2.19.1"]  # in order of first sighting


async def test_quota_usage_counts_and_first_rejection(worlds: dict[str, Loaded]) -> None:
    w = worlds["pub-07-quota-used-up"]
    start = datetime(2026, 2, 12, 18, 10, tzinfo=UTC)
    result = ok(await build(api.sandbox_config(w.database)).run("quota_usage", {
        "workspace_id": "ws_cascade", "period_start": start, "until": w.until, "quota": 10_000}))
    rows = w.window("ws_cascade", start)
    rejected = [r for r in rows if r["error_code"] == "quota_exceeded"]
    data = result.evidence[0].data
    assert (data["requests"], data["quota_exceeded"]) == (len(rows), len(rejected))
    assert data["counted"] == len(rows) - len(rejected)
    assert data["first_quota_exceeded"] == iso(rejected[0]) == "2026-03-12T13:17:54.972Z"
    assert data["log_covers_period"] is False  # the log starts 2026-03-10: a lower bound
    assert "lower bound" in result.evidence[0].summary


@pytest.mark.parametrize("case_id", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
async def test_every_operation_runs_on_every_case(worlds: dict[str, Loaded], case_id: str) -> None:
    w = worlds[case_id]
    since = w.until - DAY
    ws = Counter(r["workspace_id"] for r in w.window(None, since)).most_common(1)[0][0]
    base = {"since": since, "until": w.until}
    connector = build(api.sandbox_config(w.database))
    calls = {"error_timeline": {**base, "workspace_id": ws},
             "top_error_codes": {**base, "workspace_id": ws},
             "latency_percentiles": {**base, "workspace_id": ws},
             "first_occurrence": {**base, "workspace_id": ws, "status": 200},
             "spike_scope": {**base, "error_code": "timeout"},
             "traffic_by_version": {**base, "workspace_id": ws},
             "quota_usage": {"workspace_id": ws, "period_start": since, "until": w.until,
                             "quota": 1000}}
    assert set(calls) == set(ClickHouseConnector.operations())
    for name, params in calls.items():
        assert ok(await connector.run(name, params)).evidence, name
    rows = w.window(ws, since)
    for minutes in (7, 60, 1440):  # odd bucket sizes too: "since first" must stay exact
        result = ok(await connector.run("error_timeline",
                                        {**calls["error_timeline"], "bucket_minutes": minutes}))
        assert result.evidence[0].data["requests"] == len(rows)
        for item in result.evidence[1:]:
            first = datetime.fromisoformat(item.data["first_seen"])
            assert item.data["requests_since_first"] == sum(ts(r) >= first for r in rows)
            assert item.data["count"] == sum(r["error_code"] == item.data["error_code"]
                                             and r["status"] == item.data["status"] for r in rows)


async def test_http_interface_gives_the_same_evidence(worlds: dict[str, Loaded],
                                                      ch: LoopbackServer) -> None:
    w = worlds["pub-10-bad-release"]
    params = {"workspace_id": "ws_inkwell", "since": w.until - DAY, "until": w.until}
    local = ok(await build(api.sandbox_config(w.database)).run("error_timeline", params))
    remote = ok(await build(api.http_config(ch.url("clickhouse"), w.database)).run(
        "error_timeline", params))
    assert [e.data for e in remote.evidence] == [e.data for e in local.evidence]
    # values travel as bound parameters, limits as settings; neither is in the SQL text
    sent = next(r for r in ch.received("clickhouse") if b"toStartOfInterval" in r["body"])
    query = parse_qs(sent["query"])
    assert query["param_ws"] == ["ws_inkwell"] and b"ws_inkwell" not in sent["body"]
    assert query["max_result_rows"] == ["10000"] and query["result_overflow_mode"] == ["throw"]
    assert float(query["max_execution_time"][0]) <= 1.5  # the attempt's timeout, not 10 s


# -- faults ----------------------------------------------------------------------------


@pytest.fixture
def remote(worlds: dict[str, Loaded], ch: LoopbackServer) -> tuple[ClickHouseConnector, dict]:
    w = worlds["pub-06-card-declined"]
    params = {"workspace_id": "ws_birchwood", "since": w.until - DAY, "until": w.until}
    return build(api.http_config(ch.url("clickhouse"), w.database)), params


async def test_http_503_and_429_are_retried(remote: tuple, ch: LoopbackServer) -> None:
    connector, params = remote
    ch.inject("clickhouse", Status(503))
    assert ok(await connector.run("top_error_codes", params)).attempts == 2
    ch.inject("clickhouse", Status(429, retry_after="0.3"))
    started = time.perf_counter()
    result = ok(await connector.run("top_error_codes", params))
    assert result.attempts == 2 and time.perf_counter() - started >= 0.3  # Retry-After honoured


@pytest.mark.parametrize(("fault", "kind", "attempts"), [
    (Status(401), "unauthorized", 1), (Malformed(), "bad_response", 1),
    (Status(400, body={"error": "nope"}), "invalid_parameters", 1),
])
async def test_http_permanent_faults(remote: tuple, ch: LoopbackServer, fault: Any, kind: str,
                                     attempts: int) -> None:
    connector, params = remote
    await connector.run("top_error_codes", params)  # the client's handshake is done
    ch.inject("clickhouse", fault)
    result = await connector.run("top_error_codes", params)
    assert result.error is not None and (result.error.kind, result.attempts) == (kind, attempts)


async def test_http_hang_times_out(remote: tuple, ch: LoopbackServer) -> None:
    connector, params = remote
    ch.set_default_fault("clickhouse", Hang(1.5))  # also hangs the client's handshake
    started = time.perf_counter()
    result = await connector.run("top_error_codes", params, budget_s=0.8)
    assert result.error is not None and result.error.kind == "timed_out"
    assert time.perf_counter() - started < 1.5


async def test_breaker_opens_then_refuses_without_calling(remote: tuple,
                                                          ch: LoopbackServer) -> None:
    connector, params = remote
    ch.set_default_fault("clickhouse", Status(503))
    first = await connector.run("top_error_codes", params)
    assert first.error is not None and first.error.code == "upstream_5xx" and first.attempts == 3
    seen = len(ch.received("clickhouse"))
    started = time.perf_counter()
    refused = await connector.run("top_error_codes", params)
    assert refused.error is not None
    assert (refused.error.kind, refused.error.code) == ("unavailable", "circuit_open")
    assert len(ch.received("clickhouse")) == seen and time.perf_counter() - started < 0.05


async def test_closed_port_is_unavailable(worlds: dict[str, Loaded]) -> None:
    config = api.http_config(f"http://127.0.0.1:{closed_port()}/clickhouse", "default")
    result = await build(config).run("top_error_codes", {
        "workspace_id": "ws_a", "since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"})
    assert result.error is not None
    assert (result.error.kind, result.error.code) == ("unavailable", "connection_failed")


async def test_sandbox_refuses_writes(worlds: dict[str, Loaded], ch: LoopbackServer,
                                      engine: Any) -> None:
    w = worlds["pub-05-howto-rotate-keys"]
    url = ch.url("clickhouse") + "/"
    async with httpx.AsyncClient() as http:
        assert (await http.delete(url)).status_code == 405
        insert = await http.post(url, content=f"INSERT INTO `{w.database}`.requests "
                                 f"SELECT * FROM `{w.database}`.requests")
        drop = await http.post(url, content=f"DROP TABLE `{w.database}`.requests")
    assert insert.headers["X-ClickHouse-Exception-Code"] == "164"  # READONLY
    assert drop.status_code == 500
    assert engine.command(f"SELECT count() FROM `{w.database}`.requests") == len(w.rows)


class FakeClient:
    """Stands in for clickhouse-connect's client: raises or stalls on every query."""

    def __init__(self, error: Exception | None = None, stall_s: float = 0.0) -> None:
        self.error, self.stall_s, self.calls = error, stall_s, 0

    def query(self, sql: str, parameters: Any = None, settings: Any = None, **_: Any) -> Any:
        self.calls += 1
        time.sleep(self.stall_s)
        if self.error is not None:
            raise self.error
        raise AssertionError("FakeClient answers nothing")

    def close(self) -> None:
        """Nothing to release."""


def faked(fake: FakeClient) -> ClickHouseConnector:
    connector = build(api.sandbox_config("default"))
    connector.client = ClickHouseClient(connector.settings, factory=lambda *_: fake)
    return connector


WINDOW = {"workspace_id": "ws_a", "since": "2026-01-01T00:00:00Z",
          "until": "2026-01-02T00:00:00Z"}


@pytest.mark.parametrize(("error", "kind", "code", "attempts"), [
    (DatabaseError("Code: 159. Timeout exceeded", code=159), "timed_out", "response_timeout", 3),
    (DatabaseError("Code: 516. Authentication failed", code=516), "unauthorized", "auth_failed", 1),
    (DatabaseError("Code: 62. Syntax error", code=62), "invalid_parameters", "invalid_request", 1),
    (DatabaseError("Code: 60. Unknown table", code=60), "not_found", "not_found", 1),
    (DatabaseError("Code: 396. Limit for result exceeded", code=396), "bad_response",
     "bad_response", 1),
    (DatabaseError("Code: 241. Memory limit", code=241), "unavailable", "upstream_5xx", 3),
    (OperationalError("HTTP driver received HTTP status 502"), "unavailable", "upstream_5xx", 3),
    (OperationalError("Error executing HTTP request"), "bad_response", "bad_response", 1),
])
async def test_library_errors_are_typed(error: Exception, kind: str, code: str,
                                        attempts: int) -> None:
    fake = FakeClient(error)
    result = await faked(fake).run("top_error_codes", WINDOW)
    assert result.error is not None
    assert (result.error.kind, result.error.code, result.attempts) == (kind, code, attempts)
    assert fake.calls == attempts


async def test_slow_in_process_query_times_out() -> None:
    fake = FakeClient(stall_s=0.6)
    started = time.perf_counter()
    result = await faked(fake).run("top_error_codes", WINDOW, budget_s=0.4)
    assert result.error is not None and result.error.kind == "timed_out"
    assert time.perf_counter() - started < 0.55


async def test_server_side_limits_apply_in_chdb() -> None:
    client = ClickHouseClient(ClickHouseConfig(query_timeout_s=0.2, row_limit=10))
    attempt = Attempt(number=1, timeout_s=5.0, connect_timeout_s=1.0, deadline=Deadline(5.0))
    with pytest.raises(Exception) as timeout:  # noqa: PT011  (checked just below)
        await client.query("SELECT count() FROM numbers(100000000000)", {}, attempt)
    assert timeout.value.code == "response_timeout"  # type: ignore[attr-defined]
    with pytest.raises(Exception) as too_many:  # noqa: PT011
        await client.query("SELECT number FROM numbers({n:UInt32})", {"n": 100}, attempt)
    assert too_many.value.code == "bad_response"  # type: ignore[attr-defined]


# -- hostile parameters ------------------------------------------------------------------


@pytest.mark.parametrize("params", [
    {**WINDOW, "workspace_id": "ws_birchwood'; DROP TABLE requests; --"},
    {**WINDOW, "workspace_id": "ws_a' OR '1'='1"},
    {**WINDOW, "limit": 10**9},
    {**WINDOW, "limit": 0},
    {**WINDOW, "until": "2026-03-01T00:00:00Z"},  # over 31 days
    {**WINDOW, "until": "2025-12-31T00:00:00Z"},  # before since
    {**WINDOW, "since": "2026-01-01T00:00:00"},  # no time zone
    {**WINDOW, "sql": "SELECT 1"},
])
async def test_hostile_parameters_are_refused(params: dict[str, Any]) -> None:
    fake = FakeClient()
    result = await faked(fake).run("top_error_codes", params)
    assert result.error is not None and result.error.kind == "invalid_parameters"
    assert fake.calls == 0


@pytest.mark.parametrize(("operation", "params"), [
    ("first_occurrence", {**WINDOW, "error_code": "x' OR 1=1 --"}),
    ("spike_scope", {"since": WINDOW["since"], "until": WINDOW["until"], "status": 10**6}),
    ("error_timeline", {**WINDOW, "bucket_minutes": 1}),  # 1,440 buckets is fine ...
    ("error_timeline", {**WINDOW, "until": "2026-01-03T00:00:01Z", "bucket_minutes": 1}),
    ("quota_usage", {"workspace_id": "ws_a", "period_start": WINDOW["since"],
                     "until": WINDOW["until"], "quota": -5}),
])
async def test_hostile_operation_parameters(operation: str, params: dict[str, Any]) -> None:
    fake = FakeClient(DatabaseError("unreachable", code=241))
    result = await faked(fake).run(operation, params)
    assert result.error is not None
    allowed = params.get("bucket_minutes") == 1 and params["until"] == WINDOW["until"]
    assert (result.error.kind == "invalid_parameters") is not allowed
    assert (fake.calls > 0) is allowed


async def test_injection_strings_are_bound_harmlessly(worlds: dict[str, Loaded],
                                                      engine: Any) -> None:
    w = worlds["pub-06-card-declined"]
    client = ClickHouseClient(api.sandbox_config(w.database))
    attempt = Attempt(number=1, timeout_s=5.0, connect_timeout_s=1.0, deadline=Deadline(5.0))
    table = api.sandbox_config(w.database).table_ref
    for hostile in ("ws_birchwood' OR '1'='1", f"x'; DROP TABLE {table}; --", "\\' OR 1=1 --"):
        rows = await client.query(f"SELECT count() AS n FROM {table} "
                                  "WHERE workspace_id = {ws:String}", {"ws": hostile}, attempt)
        assert rows == [{"n": 0}]
    assert engine.command(f"SELECT count() FROM {table}") == len(w.rows)


# -- settings, health, sandbox ----------------------------------------------------------


def test_config_validation_and_missing_host() -> None:
    assert ClickHouseConfig().missing() == []
    assert ClickHouseConfig(interface="http").missing() == ["host"]
    assert isinstance(build_connector("clickhouse", ClickHouseConfig(interface="http"),
                                      resilience=FAST, metrics=Metrics()), DisabledConnector)
    for bad in ({"database": "x`; DROP"}, {"table": "requests; --"}, {"database": "1db"}):
        with pytest.raises(ValueError, match="pattern"):
            ClickHouseConfig(**bad)


async def test_health(worlds: dict[str, Loaded]) -> None:
    w = worlds["pub-01-double-charge"]
    assert (await build(api.sandbox_config(w.database)).health()).status == "ok"
    missing = await build(api.sandbox_config("no_such_database")).health()
    assert missing.status == "down" and "does not exist" in missing.detail


def test_synthetic_rows_are_deterministic() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    one = list(api.synthetic_rows(500, seed=7, start=start, workspaces=20))
    assert one == list(api.synthetic_rows(500, seed=7, start=start, workspaces=20))
    assert one != list(api.synthetic_rows(500, seed=8, start=start, workspaces=20))
    assert all(set(r) == set(api.COLUMNS) for r in one)
    assert [r["ts"] for r in one] == sorted(r["ts"] for r in one)
    assert api.database_name("pub-01") != api.database_name("pub-01")


async def test_http_queries_run_side_by_side(remote: tuple, ch: LoopbackServer) -> None:
    """One slow round trip must not hold every other query behind it (and their threads)."""
    connector, params = remote
    # warm: opening a client costs several round trips; open the pool's clients first
    await asyncio.gather(*(connector.run("top_error_codes", params) for _ in range(4)))
    ch.set_latency("clickhouse", 0.3)
    started = time.perf_counter()
    results = await asyncio.gather(*(connector.run("top_error_codes", params)
                                     for _ in range(4)))
    elapsed = time.perf_counter() - started
    assert all(r.ok for r in results), [r.error for r in results]
    assert elapsed < 0.3 * 4 * 0.75, f"4 queries took {elapsed:.2f} s: they ran one at a time"
