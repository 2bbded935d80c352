"""Six connector calls at once against one after the other, each source 300 ms away.

For one case (default pub-06-card-declined) a sandbox world is started and one
operation of each of the six connectors is run with that case's real parameters
(customer, workspace, the 24 h before the ticket):

    clickhouse.error_timeline  stripe.invoices      github.deployments
    linear.search_issues       statuspage.incidents docs.search

Latency is injected per source (default 300 ms):

* stripe, github, linear, statuspage: the loopback sandbox server delays every
  answer of their mount (`LoopbackServer.set_latency`), i.e. per HTTP request.
* clickhouse: the connector talks to a ClickHouse HTTP endpoint served from the
  case's chDB database (`sandbox.apis.clickhouse.http_routes`, mounted on the same
  loopback server as `clickhouse`) through the real clickhouse-connect HTTP client,
  and that mount is delayed like the others, per HTTP request.
* docs: a local folder, no server. The docs client's `search` (the synchronous
  SQLite FTS5 call the connector runs in a worker thread) is wrapped so that it
  first sleeps (`time.sleep`) in that thread, outside the index lock.

After one warm-up of each mode, `--reps` rounds run all six sequentially
(awaiting each in turn) and all six with `asyncio.gather`, alternating the order
of the two modes between rounds. Every call must succeed (`ToolResult.ok`).
Target: concurrent median <= 1.2 x the median of the slowest single call.

Run:  .venv/bin/python -m benchmarks.connectors_concurrency [--case ID] [--reps N] [--out FILE]

One JSON object goes to stdout (and to --out); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from connectors.base import Connector, ToolResult
from connectors.docs.connector import DocsConnector
from connectors.registry import DisabledConnector, build_connectors
from core.settings import ResilienceSettings
from core.telemetry import Metrics, configure_logging
from sandbox.apis import clickhouse as clickhouse_api
from sandbox.cases import load_case
from sandbox.world import HTTP_MOUNTS, SandboxWorld

CASES_DIR = Path(__file__).resolve().parent.parent / "evals" / "cases"
DEFAULT_CASE = "pub-06-card-declined"
CUSTOMER = "cus_8tHI1tN5ajHMuC"
WORKSPACE = "ws_birchwood"
TARGET_RATIO = 1.2
OPS: tuple[tuple[str, str], ...] = (
    ("clickhouse", "error_timeline"), ("stripe", "invoices"), ("github", "deployments"),
    ("linear", "search_issues"), ("statuspage", "incidents"), ("docs", "search"),
)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _stats(ms: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(ms), 2), "p90_ms": round(_percentile(ms, 90), 2),
            "min_ms": round(min(ms), 2), "max_ms": round(max(ms), 2)}


def slow_docs_search(connector: DocsConnector, delay_s: float) -> None:
    """Make the docs client's search sleep `delay_s` in its worker thread before searching."""
    client = connector._client()  # opened now, so the wrapper sits on the instance used
    original = client.search

    def search(match: str, prefix: str | None, rows: int, stop_at: float) -> Any:
        time.sleep(delay_s)
        return original(match, prefix, rows, stop_at)

    client.search = search  # type: ignore[method-assign]


def case_params(world: SandboxWorld, *, customer: str, workspace: str) -> dict[str, dict[str, Any]]:
    """Return each operation's parameters: the case's customer, workspace and 24 h window."""
    created = world.case.case.ticket.created_at
    window = {"since": (created - timedelta(hours=24)).isoformat(), "until": created.isoformat()}
    return {
        "clickhouse": {"workspace_id": workspace, **window, "bucket_minutes": 60},
        "stripe": {"customer_id": customer},
        "github": dict(window),
        "linear": {"query": "payment_required",
                   "states": ["triage", "backlog", "unstarted", "started"]},
        "statuspage": dict(window),
        "docs": {"query": "402 payment_required unpaid invoice", "limit": 3},
    }



async def _one(connector: Connector, source: str, operation: str,
               params: dict[str, Any]) -> tuple[ToolResult, float]:
    began = time.perf_counter()
    result = await connector.run(operation, params)
    took = (time.perf_counter() - began) * 1000
    if not result.ok:
        raise RuntimeError(f"{source}.{operation} failed: {result.error}")
    return result, took


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the world, inject latency, time both modes; return the report."""
    started = time.monotonic()
    case = load_case(CASES_DIR / args.case)
    world = SandboxWorld(case)
    # ClickHouse's HTTP interface over the case's chDB database, on the world's server
    world.server.mount("clickhouse", clickhouse_api.http_routes(),
                       methods=frozenset({"GET", "POST"}))
    _log(f"starting sandbox world of {case.id} ...")
    with world:
        mounts = (*HTTP_MOUNTS, "clickhouse")
        for mount in mounts:
            world.server.set_latency(mount, args.latency_s)
        base = world.connector_settings()
        settings = base.model_copy(update={"clickhouse": clickhouse_api.http_config(
            world.server.url("clickhouse"), world.database)})
        built = build_connectors(settings, resilience=ResilienceSettings(), metrics=Metrics())
        connectors: dict[str, Connector] = {}
        for name, conn in built.items():
            if isinstance(conn, DisabledConnector):
                raise RuntimeError(f"connector {name} is disabled: {conn.reason}")
            connectors[name] = conn
        docs = connectors["docs"]
        assert isinstance(docs, DocsConnector)
        slow_docs_search(docs, args.latency_s)
        params = case_params(world, customer=args.customer, workspace=args.workspace)

        requests: dict[str, int] = {}  # HTTP requests of each call in the last sequential round

        async def sequential() -> tuple[float, dict[str, float], list[ToolResult]]:
            began = time.perf_counter()
            each: dict[str, float] = {}
            results = []
            for source, operation in OPS:
                seen = len(world.server.received(source)) if source in mounts else 0
                result, took = await _one(connectors[source], source, operation, params[source])
                each[f"{source}.{operation}"] = took
                if source in mounts:
                    requests[f"{source}.{operation}"] = len(world.server.received(source)) - seen
                results.append(result)
            return (time.perf_counter() - began) * 1000, each, results

        async def concurrent() -> tuple[float, dict[str, float], list[ToolResult]]:
            began = time.perf_counter()
            done = await asyncio.gather(*(_one(connectors[s], s, o, params[s]) for s, o in OPS))
            wall = (time.perf_counter() - began) * 1000
            each = {f"{s}.{o}": took for (s, o), (_, took) in zip(OPS, done, strict=True)}
            return wall, each, [r for r, _ in done]

        try:
            _log("warm-up ...")
            _, _, warm = await sequential()
            first_requests = dict(requests)
            await concurrent()
            seq_wall: list[float] = []
            con_wall: list[float] = []
            single: dict[str, list[float]] = {f"{s}.{o}": [] for s, o in OPS}
            in_gather: dict[str, list[float]] = {f"{s}.{o}": [] for s, o in OPS}
            for rep in range(args.reps):
                order = (sequential, concurrent) if rep % 2 == 0 else (concurrent, sequential)
                for mode in order:
                    wall, each, _ = await mode()
                    if mode is sequential:
                        seq_wall.append(wall)
                        for k, v in each.items():
                            single[k].append(v)
                    else:
                        con_wall.append(wall)
                        for k, v in each.items():
                            in_gather[k].append(v)
                _log(f"  round {rep + 1}/{args.reps}: sequential {seq_wall[-1]:.0f} ms, "
                     f"concurrent {con_wall[-1]:.0f} ms")
        finally:
            for conn in connectors.values():
                await conn.aclose()

    per_op = {k: _stats(v) for k, v in single.items()}
    slowest_op = max(per_op, key=lambda k: per_op[k]["median_ms"])
    slowest = per_op[slowest_op]["median_ms"]
    seq = _stats(seq_wall)
    con = _stats(con_wall)
    ratio = con["median_ms"] / slowest
    sum_single = sum(v["median_ms"] for v in per_op.values())
    return {
        "benchmark": "connectors_concurrency",
        "case": case.id,
        "injected_latency_s": args.latency_s,
        "reps": args.reps,
        "operations": {f"{s}.{o}": params[s] for s, o in OPS},
        "evidence_items": {f"{r.source}.{r.operation}": len(r.evidence) for r in warm},
        "http_requests_per_call": {
            "first_call": first_requests, "steady": dict(requests),
            "note": "the first clickhouse call also opens the clickhouse-connect client "
                    "(its handshake queries); error_timeline then runs two dependent queries "
                    "(the timeline, then the since-first-seen counts), so it pays the latency "
                    "twice; statuspage.incidents fetches its pages concurrently"},
        "one_round_trip_ms": round(args.latency_s * 1000, 1),
        "per_op_alone": per_op,
        "per_op_inside_gather": {k: _stats(v) for k, v in in_gather.items()},
        "slowest_single_call": {"operation": slowest_op, "median_ms": slowest},
        "sequential": seq,
        "concurrent": con,
        "sum_of_single_medians_ms": round(sum_single, 2),
        "speedup_sequential_over_concurrent": round(seq["median_ms"] / con["median_ms"], 2),
        "ratio_concurrent_to_slowest": round(ratio, 3),
        "ratio_concurrent_to_one_round_trip": round(con["median_ms"] / (args.latency_s * 1000), 3)
        if args.latency_s else None,
        "target": {"limit_ratio": TARGET_RATIO, "measured_ratio": round(ratio, 3),
                   "pass": ratio <= TARGET_RATIO},
        "all_calls_ok": True,
        "notes": [
            "stripe, github, linear, statuspage: the loopback sandbox server delays every HTTP "
            f"answer of their mount by {args.latency_s} s (LoopbackServer.set_latency)",
            "clickhouse: real clickhouse-connect HTTP client against "
            "sandbox.apis.clickhouse.http_routes (chDB behind a ClickHouse HTTP endpoint) "
            f"mounted on the same loopback server; the mount delays each HTTP answer by "
            f"{args.latency_s} s",
            f"docs: no server; DocsClient.search (run by the connector in a worker thread via "
            f"asyncio.to_thread) is wrapped to time.sleep({args.latency_s}) in that thread "
            "before the real FTS5 search, outside the index lock",
            "latency is per HTTP request: an operation making k dependent requests pays k x "
            f"the latency (http_requests_per_call); the slowest single call is {slowest_op} "
            f"({requests.get(slowest_op, '?')} requests), and the target compares with that "
            "measured call, not with one round trip (ratio_concurrent_to_one_round_trip)",
            "every call of every round returned ToolResult.ok (the run aborts otherwise)",
        ],
        "environment": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                        "platform": platform.platform(),
                        "load_average_at_end": [round(v, 2) for v in os.getloadavg()]},
        "elapsed_s": round(time.monotonic() - started, 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print its JSON report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.connectors_concurrency",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--case", default=DEFAULT_CASE, help="case folder under evals/cases")
    parser.add_argument("--customer", default=CUSTOMER, help="Stripe customer id of the case")
    parser.add_argument("--workspace", default=WORKSPACE, help="workspace id of the case")
    parser.add_argument("--reps", type=int, default=10, help="measured rounds per mode (>= 1)")
    parser.add_argument("--latency-s", type=float, default=0.3,
                        help="latency injected per source (default 0.3)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.latency_s < 0:
        parser.error("--reps must be >= 1 and --latency-s >= 0")
    configure_logging(level="ERROR")
    report = asyncio.run(run(args))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
