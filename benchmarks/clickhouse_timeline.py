"""How long the ClickHouse connector's `error_timeline` takes on a large request log.

A world of synthetic rows (default 1,000,000 rows, 60 workspaces, 30 days;
`sandbox.apis.clickhouse.synthetic_rows`, seeded) is loaded into the
in-process chDB engine and merged into one part (`OPTIMIZE ... FINAL`, the
steady state a server reaches by background merges). Then, after warm-up,
`error_timeline` for the busiest workspace over the whole 30 days in 60-minute
buckets is timed through the connector (`Connector.run`: parameter validation,
resilience policy, both queries, evidence building) and as the raw timeline
query alone (the same SQL and bound parameters on a clickhouse-connect client).
Runs alternate so drift hits both alike. Target: connector median <= 50 ms.

Run:  .venv/bin/python -m benchmarks.clickhouse_timeline [--rows N] [--runs N] [--out FILE]

One JSON object goes to stdout (and to --out); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import clickhouse_connect

from connectors.clickhouse.connector import _TIMELINE, ClickHouseConnector
from connectors.registry import build_connector
from core.settings import ResilienceSettings
from core.telemetry import Metrics, configure_logging
from sandbox.apis import clickhouse as api

START = datetime(2026, 8, 1, tzinfo=UTC)
TARGET_MEDIAN_MS = 50.0


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return {"median_ms": round(statistics.median(ordered), 2), "p95_ms": round(p95, 2),
            "min_ms": round(ordered[0], 2), "max_ms": round(ordered[-1], 2)}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def measure(rows: int, runs: int, warmup: int, workspaces: int, days: int) -> dict[str, Any]:
    """Load the synthetic world, then time the connector and the raw query."""
    engine = clickhouse_connect.get_client(interface="chdb")
    database = api.database_name("bench_timeline")
    engine.command(f"CREATE DATABASE {database}")
    api.create_table(engine, database)
    _log(f"loading {rows:,} rows into {database} ...")
    started = time.perf_counter()
    loaded = api.load_rows(engine, api.synthetic_rows(rows, seed=42, start=START, days=days,
                                                      workspaces=workspaces), database=database)
    load_s = time.perf_counter() - started
    try:
        config = api.sandbox_config(database)
        # a server merges a table's parts in the background; measure that steady state
        started = time.perf_counter()
        engine.command(f"OPTIMIZE TABLE {config.table_ref} FINAL")
        optimize_s = time.perf_counter() - started
        parts = engine.command("SELECT count() FROM system.parts WHERE active AND "
                               "database = {db:String}", parameters={"db": database})
        connector = build_connector("clickhouse", config, resilience=ResilienceSettings(),
                                    metrics=Metrics())
        assert isinstance(connector, ClickHouseConnector)
        busiest, in_workspace = engine.query(
            f"SELECT workspace_id, count() AS n FROM {config.table_ref} "  # noqa: S608
            "GROUP BY workspace_id ORDER BY n DESC LIMIT 1").result_rows[0]
        until = START + timedelta(days=days)
        params = {"workspace_id": busiest, "since": START, "until": until, "bucket_minutes": 60}
        raw_sql = _TIMELINE.replace("@T", config.table_ref)
        raw_values = {"ws": busiest, "since": START, "until": until, "bucket": 60,
                      "limit": config.row_limit}
        raw_client = clickhouse_connect.get_client(interface="chdb", tz_mode="aware")
        settings = connector.client.settings(10.0)

        async def via_connector() -> float:
            began = time.perf_counter()
            result = await connector.run("error_timeline", params)
            took = (time.perf_counter() - began) * 1000
            assert result.error is None, result.error
            return took

        def raw() -> tuple[float, int]:
            began = time.perf_counter()
            out = raw_client.query(raw_sql, parameters=raw_values, settings=settings)
            return (time.perf_counter() - began) * 1000, len(out.result_rows)

        for _ in range(warmup):
            await via_connector()
            raw()
        connector_ms: list[float] = []
        raw_ms: list[float] = []
        for _ in range(runs):
            connector_ms.append(await via_connector())
            took, result_rows = raw()
            raw_ms.append(took)
        evidence = (await connector.run("error_timeline", params)).evidence
        await connector.aclose()
    finally:
        api.drop_world(engine, database)
    via = _stats(connector_ms)
    return {
        "benchmark": "clickhouse_timeline",
        "rows": loaded, "workspaces": workspaces, "days": days,
        "load_s": round(load_s, 2), "load_rows_per_s": round(loaded / load_s),
        "optimize_s": round(optimize_s, 2), "parts": parts,
        "operation": "error_timeline", "workspace_id": busiest,
        "workspace_rows": in_workspace, "bucket_minutes": 60,
        "window": [START.isoformat(), until.isoformat()],
        "raw_result_rows": result_rows, "evidence_items": len(evidence),
        "runs": runs, "warmup": warmup,
        "connector": via, "raw_query": _stats(raw_ms),
        "target_median_ms": TARGET_MEDIAN_MS, "meets_target": via["median_ms"] <= TARGET_MEDIAN_MS,
        "summary": evidence[0].summary if evidence else "",
        "python": platform.python_version(), "chdb": version("chdb"),
        "clickhouse_connect": version("clickhouse-connect"),
    }


def main() -> None:
    """Parse arguments, run the benchmark, print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--workspaces", type=int, default=60)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    configure_logging(level="WARNING")  # one log line per call would be timed too
    report = asyncio.run(measure(args.rows, args.runs, args.warmup, args.workspaces, args.days))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
