"""Contract: the request-log table is the spec's, and every case's rows load and round-trip."""
# ruff: noqa: S608  (SQL names the generated test database; no outside value reaches it)

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest

from connectors.clickhouse.config import REQUEST_LOG_COLUMNS
from sandbox.apis import clickhouse as api
from sandbox.cases import load_case

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "evals" / "cases"
SPEC = next((p for p in (ROOT.parent / "shared" / "spec" / "case-format.md",
                         ROOT / "spec" / "case-format.md") if p.is_file()), None)
# The spec's table, as of case format 1 (kept here too, so a spec edit is noticed)
FORMAT_1 = [
    ("ts", "DateTime64(3, 'UTC')"), ("request_id", "String"),
    ("workspace_id", "LowCardinality(String)"), ("api_key_id", "String"),
    ("provider", "LowCardinality(String)"), ("model", "LowCardinality(String)"),
    ("status", "UInt16"), ("error_code", "LowCardinality(String)"), ("latency_ms", "UInt32"),
    ("prompt_tokens", "UInt32"), ("completion_tokens", "UInt32"),
    ("gateway_version", "LowCardinality(String)"), ("region", "LowCardinality(String)"),
]
CASE_IDS = sorted(p.name for p in CASES.iterdir() if (p / "case.yaml").is_file())


def spec_columns(text: str) -> list[tuple[str, str]]:
    """Return (column, type) rows of the spec's request-log table."""
    section = text.split("## world/clickhouse/requests.jsonl.gz", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\|\s*`(\w+)`\s*\|\s*`([^`]+)`\s*\|", section, flags=re.MULTILINE)


@pytest.fixture(scope="module")
def engine() -> Any:
    return clickhouse_connect.get_client(interface="chdb")


@pytest.fixture(scope="module")
def empty_table(engine: Any) -> Iterator[str]:
    database = api.database_name("contract")
    engine.command(f"CREATE DATABASE {database}")
    api.create_table(engine, database)
    yield database
    api.drop_world(engine, database)


def test_table_matches_the_spec(engine: Any, empty_table: str) -> None:
    described = [(r[0], r[1]) for r in
                 engine.query(f"DESCRIBE TABLE {empty_table}.requests").result_rows]
    assert described == FORMAT_1 == list(REQUEST_LOG_COLUMNS)
    engine_name, key = engine.query(
        "SELECT engine, sorting_key FROM system.tables WHERE database = {db:String} "
        "AND name = 'requests'", parameters={"db": empty_table}).result_rows[0]
    assert (engine_name, key) == ("MergeTree", "workspace_id, ts")


def test_spec_still_says_so() -> None:
    if SPEC is None:
        pytest.skip("spec/case-format.md is not beside the repository")
    assert spec_columns(SPEC.read_text(encoding="utf-8")) == FORMAT_1


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_every_row_of_every_case_loads(engine: Any, case_id: str) -> None:
    case = load_case(CASES / case_id)
    path = case.world.requests_path
    assert path is not None
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        in_file = sum(1 for line in lines if line.strip())
    database = api.database_name(case_id)
    try:
        loaded = api.load_world(engine, case.world, database=database)
        names = ", ".join(f"toString({n})" if n == "ts" else n for n, _ in REQUEST_LOG_COLUMNS)
        stored = engine.query(f"SELECT {names} FROM {database}.requests "
                              "ORDER BY request_id").result_rows
    finally:
        api.drop_world(engine, database)
    assert loaded == in_file == len(stored) > 0
    source = sorted((tuple(row[n] for n, _ in REQUEST_LOG_COLUMNS)
                     for row in case.world.request_rows()), key=lambda r: r[1])
    assert [tuple(r) for r in stored] == source  # every value round-trips unchanged
