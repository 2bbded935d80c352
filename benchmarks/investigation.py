"""Investigation wall time: the framework's own overhead, with realistic latency, and throughput.

Three sections (`--sections`, default all), everything on loopback in this process:

a) instant: for each case under evals/cases (one `SandboxWorld` per case, started
   once), the gateway has the rule tier only ([rules, human]) and the sandboxes
   answer at once. After a warm-up, `--runs` investigations per case with the real
   sandbox connectors, alternating with as many "framework only" investigations
   whose connectors are in-memory fakes that replay the ToolResults recorded in the
   warm-up (keyed by source, operation and parameters): that isolates the graph,
   the rules and the checkpointer. Target: median <= 150 ms (real connectors).
b) latency: one case (default pub-06-card-declined), every source 300 ms away and
   the model tier 1 s away, gateway [anthropic -> rules -> human] with anthropic a
   loopback `ModelSandbox` answering a valid Diagnosis after `delay_s`. `--latency-runs`
   sequential investigations; target median <= 1.15 x 1.3 s (slowest source + one
   model call). The graph's own dependent hops are counted from timed connector
   calls and reported next to that floor.
c) throughput: the same world and latencies, `--total` investigations with
   `--concurrency` in flight at once (a semaphore); investigations per minute, wall
   percentiles, per-operation call times and lock waits inside the connectors.

How latency is injected (b, c):
* stripe, github, linear, statuspage: `LoopbackServer.set_latency` (each HTTP answer).
* clickhouse, `http`: the connector uses the real clickhouse-connect HTTP client
  against `sandbox.apis.clickhouse.http_routes` (chDB behind a ClickHouse HTTP
  endpoint) mounted on the world's server, delayed per HTTP answer like the others.
  `wrap`: in-process chDB, and the connector's `run` awaits `asyncio.sleep(latency)`
  before delegating (once per operation, outside the client's lock). `--clickhouse
  both` (default) runs b and c once each way, each with a world of its own.
* docs (local folder, no server): the connector's `run` awaits
  `asyncio.sleep(latency)` before delegating (`--docs run`, default), or the docs
  client's `search` sleeps in its worker thread (`--docs thread`, as in
  benchmarks.connectors_concurrency).
* the model: the ModelSandbox's `Reply(delay_s=...)`. Its Diagnosis is the one the
  rule tier reaches for the case (computed first, with no latency), so every citation
  is among the gathered evidence.

Run:  .venv/bin/python -m benchmarks.investigation [--sections abc] [--out FILE]

One JSON object goes to stdout (and to --out); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from agent.factory import investigator
from agent.runner import Investigator
from connectors.base import ToolResult
from connectors.clickhouse.connector import ClickHouseConnector
from connectors.docs.connector import DocsConnector
from connectors.registry import DisabledConnector, build_connectors
from connectors.settings import ConnectorSettings
from core.domain import SourceName, Ticket
from core.settings import LLMSettings, ModelTierSettings, Settings, load_settings
from core.telemetry import Metrics, configure_logging
from sandbox.apis import clickhouse as clickhouse_api
from sandbox.cases import discover, load_case
from sandbox.models import ModelSandbox, Reply
from sandbox.world import HTTP_MOUNTS, SandboxWorld

CASES_DIR = Path(__file__).resolve().parent.parent / "evals" / "cases"
DEFAULT_CASE = "pub-06-card-declined"
TARGET_INSTANT_MEDIAN_MS = 150.0
TARGET_LATENCY_RATIO = 1.15
MODEL_NAME = "claude-sonnet-4-6"
MODEL_KEY = SecretStr("sk-test-key-for-the-sandbox-0001")
SECTIONS = "abc"

AnyConnector = Any  # a built connector or its disabled stand-in (agent Runnables both)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _stats(ms: list[float]) -> dict[str, float | int]:
    if not ms:
        return {"n": 0}
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 2),
            "p95_ms": round(_percentile(ms, 95), 2), "mean_ms": round(statistics.fmean(ms), 2),
            "min_ms": round(min(ms), 2), "max_ms": round(max(ms), 2)}


def call_key(source: str, operation: str, params: Any) -> str:
    """Identify a call by source, operation and parameters (as sorted JSON)."""
    raw = params.model_dump(mode="json") if isinstance(params, BaseModel) else (params or {})
    return f"{source}.{operation}:{json.dumps(raw, sort_keys=True, default=str)}"


# -- connector wrappers -------------------------------------------------------------

@dataclass
class TimedCall:
    """One connector call as the graph made it (perf_counter seconds)."""

    source: str
    operation: str
    start: float
    end: float
    ok: bool


@dataclass
class CallLog:
    """Connector calls of the current investigation (sequential runs only) and of all runs."""

    current: list[TimedCall] = field(default_factory=list)
    by_op: dict[str, list[float]] = field(default_factory=dict)
    failures: Counter[str] = field(default_factory=Counter)

    def add(self, call: TimedCall, code: str | None) -> None:
        self.current.append(call)
        self.by_op.setdefault(f"{call.source}.{call.operation}", []).append(
            (call.end - call.start) * 1000)
        if code is not None:
            self.failures[f"{call.source}.{call.operation}:{code}"] += 1


class Proxy:
    """Delegates to a connector: optionally sleeps first, times the call, records results."""

    def __init__(self, source: str, inner: AnyConnector, *, delay_s: float = 0.0,
                 log: CallLog | None = None,
                 recorded: dict[str, ToolResult] | None = None) -> None:
        self.source = source
        self.inner = inner
        self.delay_s = delay_s
        self.log = log
        self.recorded = recorded

    async def run(self, operation: str, params: Any = None, *,
                  budget_s: float | None = None) -> ToolResult:
        """Run the wrapped connector's operation."""
        start = time.perf_counter()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        result: ToolResult = await self.inner.run(operation, params, budget_s=budget_s)
        if self.log is not None:
            self.log.add(TimedCall(self.source, operation, start, time.perf_counter(), result.ok),
                         result.error.code if result.error else None)
        if self.recorded is not None:
            self.recorded[call_key(self.source, operation, params)] = result
        return result

    async def aclose(self) -> None:
        """The wrapped connectors are closed by their owner."""


class Replay:
    """An instant fake: answers with the ToolResult recorded for the same call."""

    def __init__(self, source: str, recorded: dict[str, ToolResult], fallback: AnyConnector,
                 misses: list[str]) -> None:
        self.source = source
        self.recorded = recorded
        self.fallback = fallback
        self.misses = misses

    async def run(self, operation: str, params: Any = None, *,
                  budget_s: float | None = None) -> ToolResult:
        """Return the recorded result (a miss is counted and served by the real connector)."""
        key = call_key(self.source, operation, params)
        found = self.recorded.get(key)
        if found is None:
            self.misses.append(key)
            result: ToolResult = await self.fallback.run(operation, params, budget_s=budget_s)
            return result
        return found

    async def aclose(self) -> None:
        """Nothing to release."""


class TimedLock:
    """A drop-in for a connector client's `threading.Lock` that records waits and holds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._acquired = 0.0
        self.waits_ms: list[float] = []
        self.holds_ms: list[float] = []

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire, recording how long it took."""
        began = time.perf_counter()
        got = self._lock.acquire(blocking, timeout)
        if got:
            self._acquired = time.perf_counter()
            self.waits_ms.append((self._acquired - began) * 1000)
        return got

    def release(self) -> None:
        """Release, recording how long it was held."""
        self.holds_ms.append((time.perf_counter() - self._acquired) * 1000)
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def reset(self) -> None:
        """Forget what was recorded."""
        self.waits_ms.clear()
        self.holds_ms.clear()


_SUBMITTED: contextvars.ContextVar[float] = contextvars.ContextVar("submitted", default=0.0)


@dataclass
class ThreadQueue:
    """How long `asyncio.to_thread` work of the ClickHouse client waited for a worker thread."""

    waits_ms: list[float] = field(default_factory=list)


def instrument_clickhouse(connector: ClickHouseConnector) -> tuple[TimedLock, ThreadQueue]:
    """Time the ClickHouse client's lock and its wait for a worker thread (instance patches)."""
    client = connector.client
    lock = TimedLock()
    client._lock = lock  # type: ignore[assignment]
    queue = ThreadQueue()
    sync, query, columns = client._query_sync, client.query, client.columns

    def query_sync(*args: Any, **kwargs: Any) -> Any:
        submitted = _SUBMITTED.get()  # to_thread copies the context into the worker
        if submitted:
            queue.waits_ms.append((time.perf_counter() - submitted) * 1000)
        return sync(*args, **kwargs)

    async def timed_query(*args: Any, **kwargs: Any) -> Any:
        token = _SUBMITTED.set(time.perf_counter())
        try:
            return await query(*args, **kwargs)
        finally:
            _SUBMITTED.reset(token)

    async def timed_columns(*args: Any, **kwargs: Any) -> Any:
        token = _SUBMITTED.set(time.perf_counter())
        try:
            return await columns(*args, **kwargs)
        finally:
            _SUBMITTED.reset(token)

    client._query_sync = query_sync  # type: ignore[method-assign]
    client.query = timed_query  # type: ignore[method-assign]
    client.columns = timed_columns  # type: ignore[method-assign]
    return lock, queue


def instrument_docs(connector: DocsConnector, thread_delay_s: float) -> TimedLock:
    """Time the docs index lock; optionally make `search` sleep in its worker thread first."""
    client = connector._client()
    lock = TimedLock()
    client._lock = lock  # type: ignore[assignment]
    if thread_delay_s:
        original = client.search

        def search(match: str, prefix: str | None, rows: int, stop_at: float) -> Any:
            time.sleep(thread_delay_s)
            return original(match, prefix, rows, stop_at)

        client.search = search  # type: ignore[method-assign]
    return lock


def _lock_report(lock: TimedLock) -> dict[str, Any]:
    return {"acquisitions": len(lock.waits_ms), "wait": _stats(lock.waits_ms),
            "wait_total_s": round(sum(lock.waits_ms) / 1000, 2), "hold": _stats(lock.holds_ms)}


# -- CPU per thread (Linux /proc) -------------------------------------------------------

def _thread_cpu() -> dict[int, float]:
    """Return CPU seconds (user + system) of each live thread of this process, by native id."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out: dict[int, float] = {}
    try:
        entries = list(os.scandir("/proc/self/task"))
    except OSError:
        return out
    for entry in entries:
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()  # after "(comm)": state is field 3
        out[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return out


@dataclass
class CpuTotals:
    """CPU seconds of the event loop's thread, the sandbox servers' threads and the rest."""

    elapsed_s: float = 0.0
    process_s: float = 0.0
    main_loop_s: float = 0.0
    sandbox_servers_s: float = 0.0

    def report(self, per: int | None = None, what: str = "") -> dict[str, Any]:
        other = max(0.0, self.process_s - self.main_loop_s - self.sandbox_servers_s)
        out: dict[str, Any] = {
            "elapsed_s": round(self.elapsed_s, 2), "process_cpu_s": round(self.process_s, 2),
            "main_loop_thread_s": round(self.main_loop_s, 2),
            "sandbox_server_threads_s": round(self.sandbox_servers_s, 2),
            "other_threads_s": round(other, 2),
            "main_loop_busy_share": round(self.main_loop_s / self.elapsed_s, 3)
            if self.elapsed_s else None,
        }
        if per:
            out[f"per_{what}_ms"] = {
                "main_loop": round(self.main_loop_s / per * 1000, 1),
                "sandbox_servers": round(self.sandbox_servers_s / per * 1000, 1),
                "other_threads": round(other / per * 1000, 1)}
        return out


class CpuWatch:
    """Measure CPU by thread group between `start()` and `stop()` (adds into `totals`)."""

    def __init__(self, servers: list[threading.Thread | None], totals: CpuTotals) -> None:
        self.servers = {t.native_id for t in servers if t is not None and t.native_id}
        self.main = threading.main_thread().native_id
        self.totals = totals
        self._t0 = self._p0 = 0.0
        self._cpu0: dict[int, float] = {}

    def start(self) -> None:
        self._cpu0 = _thread_cpu()
        self._p0 = time.process_time()
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        elapsed = time.perf_counter() - self._t0
        process = time.process_time() - self._p0
        cpu = _thread_cpu()

        def delta(ids: set[int]) -> float:
            return sum(cpu.get(i, 0.0) - self._cpu0.get(i, 0.0) for i in ids if i in cpu)

        self.totals.elapsed_s += elapsed
        self.totals.process_s += process
        self.totals.main_loop_s += delta({self.main} if self.main else set())
        self.totals.sandbox_servers_s += delta(self.servers)


# -- settings -------------------------------------------------------------------------

def _settings(data_dir: Path, tiers: list[ModelTierSettings]) -> Settings:
    return load_settings(None, data_dir=data_dir, llm=LLMSettings(tiers=tiers))


def _rules_tiers() -> list[ModelTierSettings]:
    return [ModelTierSettings(name="rules", kind="rules"),
            ModelTierSettings(name="human", kind="human")]


def _model_tiers(sandbox: ModelSandbox) -> list[ModelTierSettings]:
    return [ModelTierSettings(name="anthropic", kind="anthropic", model=MODEL_NAME,
                              base_url=sandbox.anthropic_url(), api_key=MODEL_KEY),
            *_rules_tiers()]


def _built(settings: ConnectorSettings, app: Settings,
           metrics: Metrics) -> dict[SourceName, AnyConnector]:
    return dict(build_connectors(settings, resilience=app.resilience, metrics=metrics))


async def _close(connectors: Mapping[SourceName, AnyConnector]) -> None:
    for connector in connectors.values():
        await connector.aclose()


@asynccontextmanager
async def _investigator(settings: Settings, connectors: Mapping[SourceName, Any],
                        metrics: Metrics) -> AsyncIterator[Investigator]:
    async with investigator(settings, connectors=connectors, metrics=metrics,
                            checkpoints=":memory:") as inv:
        yield inv


def _diagnosis_of(record: dict[str, Any]) -> tuple[str | None, list[tuple[str, str]]]:
    diagnosis = record.get("diagnosis") or {}
    return diagnosis.get("root_cause"), sorted((c["source"], c["ref"])
                                               for c in diagnosis.get("cited", []))


# -- a) instant, rules only ------------------------------------------------------------

async def _instant_case(path: Path, settings: Settings, runs: int,
                        cpu_real: CpuTotals, cpu_fake: CpuTotals) -> dict[str, Any]:
    case = load_case(path)
    ticket: Ticket = case.case.ticket
    metrics = Metrics()
    with SandboxWorld(case) as world:
        built = _built(world.connector_settings(), settings, metrics)
        locks: dict[str, TimedLock] = {}
        clickhouse, docs = built.get("clickhouse"), built.get("docs")
        if isinstance(clickhouse, ClickHouseConnector):
            locks["clickhouse"], _ = instrument_clickhouse(clickhouse)
        if isinstance(docs, DocsConnector):
            locks["docs"] = instrument_docs(docs, 0.0)
        recorded: dict[str, ToolResult] = {}
        log = CallLog()
        real = {n: Proxy(n, c, recorded=recorded, log=log) for n, c in built.items()}
        misses: list[str] = []
        fake = {n: Replay(n, recorded, c, misses) for n, c in built.items()}
        try:
            async with _investigator(settings, real, metrics) as inv_real, \
                    _investigator(settings, fake, metrics) as inv_fake:
                first = await inv_real.investigate(ticket)  # warm-up; records the results
                for proxy in real.values():
                    proxy.recorded = None
                await inv_fake.investigate(ticket)  # warm-up of the fake path
                warm_misses = len(misses)
                log.by_op.clear()
                for lock in locks.values():
                    lock.reset()
                real_ms: list[float] = []
                fake_ms: list[float] = []
                same = True
                threads = [world.server._thread]
                watch_real, watch_fake = CpuWatch(threads, cpu_real), CpuWatch(threads, cpu_fake)
                for i in range(runs):
                    pair = (inv_real, inv_fake) if i % 2 == 0 else (inv_fake, inv_real)
                    for inv in pair:
                        watch = watch_real if inv is inv_real else watch_fake
                        watch.start()
                        record = await inv.investigate(ticket)
                        watch.stop()
                        (real_ms if inv is inv_real else fake_ms).append(record["wall_ms"])
                        same = same and _diagnosis_of(record) == _diagnosis_of(first)
        finally:
            await _close(built)
    root_cause, cited = _diagnosis_of(first)
    op_ms = {k: statistics.median(v) for k, v in log.by_op.items()}
    slowest = sorted(op_ms.items(), key=lambda kv: -kv[1])[:3]
    return {
        "case": case.id, "tier": first["tier"], "root_cause": root_cause,
        "cited": len(cited), "connector_calls": len(first["calls"]),
        "replay_misses": len(misses) - warm_misses, "same_diagnosis_every_run": same,
        "real_connectors": _stats(real_ms), "framework_only": _stats(fake_ms),
        "slowest_calls_median_ms": {k: round(v, 1) for k, v in slowest},
        "client_locks_per_investigation": {
            name: {"acquisitions": round(len(lock.holds_ms) / runs, 1),
                   "held_ms": round(sum(lock.holds_ms) / runs, 1),
                   "waited_ms": round(sum(lock.waits_ms) / runs, 1)}
            for name, lock in locks.items()},
        "_real": real_ms, "_fake": fake_ms,
        "_held": {name: sum(lock.holds_ms) / runs for name, lock in locks.items()},
    }


async def instant(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    """Section a: every case, instant sandboxes, the rule tier."""
    settings = _settings(data_dir, _rules_tiers())
    per_case: list[dict[str, Any]] = []
    paths = discover(args.cases_dir)
    cpu_real, cpu_fake = CpuTotals(), CpuTotals()
    for n, path in enumerate(paths, 1):
        began = time.monotonic()
        result = await _instant_case(path, settings, args.runs, cpu_real, cpu_fake)
        per_case.append(result)
        _log(f"  [a] {n}/{len(paths)} {result['case']}: real median "
             f"{result['real_connectors']['median_ms']} ms, framework only "
             f"{result['framework_only']['median_ms']} ms ({time.monotonic() - began:.1f} s)")
    real_all = [v for c in per_case for v in c.pop("_real")]
    fake_all = [v for c in per_case for v in c.pop("_fake")]
    held = [c.pop("_held") for c in per_case]
    real, fake = _stats(real_all), _stats(fake_all)
    return {
        "cases": len(per_case), "runs_per_case": args.runs,
        "tiers": ["rules", "human"],
        "with_real_sandbox_connectors": real,
        "framework_only": fake,
        "framework_share_of_median": round(float(fake["median_ms"]) / float(real["median_ms"]), 3),
        "target": {"limit_median_ms": TARGET_INSTANT_MEDIAN_MS,
                   "measured_median_ms": real["median_ms"],
                   "pass": float(real["median_ms"]) <= TARGET_INSTANT_MEDIAN_MS},
        "cpu": {"with_real_sandbox_connectors": cpu_real.report(len(real_all), "investigation"),
                "framework_only": cpu_fake.report(len(fake_all), "investigation")},
        "client_lock_held_ms_per_investigation_mean": {
            name: round(statistics.fmean(h[name] for h in held if name in h), 1)
            for name in ("clickhouse", "docs") if any(name in h for h in held)},
        "per_case": per_case,
        "notes": [
            "client locks: the ClickHouse client runs every query (chDB here) under one lock "
            "per connector, the docs client every search (with its index sync) under one lock; "
            "held_ms is the time queries spent holding it, i.e. serialised work per "
            "investigation",
            "cpu: CPU seconds by thread (/proc/self/task) during the measured investigations: "
            "the event loop's thread (graph, rules, connector clients, checkpointer calls), the "
            "sandbox server's thread (uvicorn and the fake APIs, in this same process) and "
            "the other threads (worker threads of chDB, docs FTS5 and PyGithub, the aiosqlite "
            "thread of the checkpointer)",
            "one SandboxWorld per case, started once; one warm-up investigation per mode "
            "before measuring; real and framework-only runs alternate",
            "framework only: every connector is an in-memory fake returning the ToolResult "
            "recorded in the real warm-up for the same (source, operation, params); "
            "replay_misses counts calls it had not seen (served by the real connector)",
            "checkpointer: AsyncSqliteSaver on ':memory:' (investigator(checkpoints=':memory:'))",
        ],
    }


# -- b) and c): latency and throughput -----------------------------------------------

@dataclass
class LatencyWorld:
    """The world, the model sandbox and the investigator of sections b and c."""

    world: SandboxWorld
    sandbox: ModelSandbox
    inv: Investigator
    log: CallLog
    ticket: Ticket
    mounts: tuple[str, ...]
    ch_lock: TimedLock | None
    ch_queue: ThreadQueue | None
    docs_lock: TimedLock | None
    model_reply: dict[str, Any]
    mode: str

    def threads(self) -> list[threading.Thread | None]:
        """Return the sandbox servers' threads."""
        return [self.world.server._thread, self.sandbox._thread]


def _waves(calls: list[TimedCall], began: float) -> list[dict[str, Any]]:
    """Group calls into sequential hops: a hop starts when a call starts after all before ended."""
    waves: list[dict[str, Any]] = []
    end = -1.0
    for call in sorted(calls, key=lambda c: c.start):
        if call.start >= end:
            waves.append({"start": call.start, "end": call.end, "calls": []})
        wave = waves[-1]
        wave["calls"].append(call)
        wave["end"] = end = max(wave["end"], call.end)
    out = []
    for wave in waves:
        slowest = max(wave["calls"], key=lambda c: c.end - c.start)
        out.append({
            "starts_at_ms": round((wave["start"] - began) * 1000, 1),
            "duration_ms": round((wave["end"] - wave["start"]) * 1000, 1),
            "calls": sorted(f"{c.source}.{c.operation}" for c in wave["calls"]),
            "slowest": f"{slowest.source}.{slowest.operation}",
        })
    return out


async def _latency_setup(stack: AsyncExitStack, args: argparse.Namespace, data_dir: Path,
                         mode: str) -> LatencyWorld:
    case = load_case(args.cases_dir / args.case)
    world = SandboxWorld(case)
    mounts: tuple[str, ...] = HTTP_MOUNTS
    if mode == "http":
        world.server.mount("clickhouse", clickhouse_api.http_routes(),
                           methods=frozenset({"GET", "POST"}))
        mounts = (*HTTP_MOUNTS, "clickhouse")
    stack.enter_context(world)
    sandbox = stack.enter_context(ModelSandbox())
    conn_settings = world.connector_settings()
    if mode == "http":
        conn_settings = conn_settings.model_copy(update={"clickhouse": clickhouse_api.http_config(
            world.server.url("clickhouse"), world.database)})
    metrics = Metrics()
    rules_settings = _settings(data_dir, _rules_tiers())
    built = _built(conn_settings, rules_settings, metrics)
    stack.push_async_callback(_close, built)
    ch_lock = ch_queue = docs_lock = None
    clickhouse = built.get("clickhouse")
    if isinstance(clickhouse, ClickHouseConnector):
        ch_lock, ch_queue = instrument_clickhouse(clickhouse)
    docs = built.get("docs")
    if isinstance(docs, DocsConnector):
        docs_lock = instrument_docs(docs, args.latency_s if args.docs == "thread" else 0.0)
    for name, conn in built.items():
        if isinstance(conn, DisabledConnector):
            _log(f"  note: connector {name} is disabled ({conn.reason})")
    log = CallLog()
    delays = {"docs": args.latency_s if args.docs == "run" else 0.0,
              "clickhouse": args.latency_s if mode == "wrap" else 0.0}
    plain = {n: Proxy(n, c, log=log) for n, c in built.items()}
    ticket = case.case.ticket
    # calibration, no latency: the rule tier's diagnosis becomes the model's answer, so its
    # citations are among the evidence the graph gathers; it also opens every client
    async with _investigator(rules_settings, plain, metrics) as rules_inv:
        calibration = await rules_inv.investigate(ticket)
    if not calibration.get("diagnosis"):
        raise RuntimeError(f"the rule tier did not diagnose {case.id}; no model reply to script")
    reply = dict(calibration["diagnosis"])
    reply["followup"] = []
    sandbox.set_default("anthropic", Reply(output=reply, delay_s=args.model_delay_s))
    for mount in mounts:
        world.server.set_latency(mount, args.latency_s)
    slow = {n: Proxy(n, c, log=log, delay_s=delays.get(n, 0.0)) for n, c in built.items()}
    model_settings = _settings(data_dir, _model_tiers(sandbox))
    inv = await stack.enter_async_context(_investigator(model_settings, slow, metrics))
    return LatencyWorld(world=world, sandbox=sandbox, inv=inv, log=log, ticket=ticket,
                        mounts=mounts, ch_lock=ch_lock, ch_queue=ch_queue, docs_lock=docs_lock,
                        model_reply=reply, mode=mode)


_LOCK_NOTES = {
    "http": [
        "clickhouse over HTTP: an operation makes one or more queries, each a round trip "
        "(error_timeline: the timeline, then counts that depend on it); the ClickHouse client "
        "runs every query of the connector under one threading.Lock held for the whole round "
        "trip (connectors/clickhouse/client.py, ClickHouseClient._query_sync), so the queries "
        "of clickhouse calls running in parallel queue one after another: see the waves and "
        "latency_units_on_critical_path",
    ],
    "wrap": [
        "clickhouse wrap: the latency is paid once per operation outside the client's lock, "
        "so this is what the graph costs if ClickHouse queries neither queued nor took "
        "several round trips; it understates a real remote ClickHouse",
    ],
}


def _requests(lw: LatencyWorld) -> dict[str, int]:
    return {m: len(lw.world.server.received(m)) for m in lw.mounts}


async def latency(lw: LatencyWorld, args: argparse.Namespace) -> dict[str, Any]:
    """Section b: sequential investigations with every source and the model delayed."""
    floor_ms = (args.latency_s + args.model_delay_s) * 1000
    await lw.inv.investigate(lw.ticket)  # warm-up at these latencies
    walls: list[float] = []
    runs: list[dict[str, Any]] = []
    for i in range(args.latency_runs):
        lw.log.current.clear()
        models_before = len(lw.sandbox.received("anthropic"))
        before = _requests(lw)
        began = time.perf_counter()
        record = await lw.inv.investigate(lw.ticket)
        walls.append(record["wall_ms"])
        if record["tier"] != "anthropic":
            raise RuntimeError(f"latency run {i}: served by {record['tier']}, not the model "
                               f"({record['tiers_tried']})")
        waves = _waves(lw.log.current, began)
        model_calls = len(lw.sandbox.received("anthropic")) - models_before
        timings = record["timings_ms"]
        diagnose_ms = sum(v for k, v in timings.items() if k.startswith("diagnose:"))
        waves_ms = sum(w["duration_ms"] for w in waves)
        runs.append({
            "wall_ms": record["wall_ms"], "connector_hops": len(waves),
            "model_calls": model_calls, "waves": waves,
            "connector_waves_ms": round(waves_ms, 1), "diagnose_ms": round(diagnose_ms, 1),
            "rest_ms": round(record["wall_ms"] - waves_ms - diagnose_ms, 1),
            "http_requests": {m: n - before[m] for m, n in _requests(lw).items()},
            "timings_ms_keys": sorted(timings),
        })
        _log(f"  [b] run {i + 1}/{args.latency_runs}: {record['wall_ms']:.0f} ms, "
             f"{len(waves)} connector hops, {model_calls} model call(s)")
    median = statistics.median(walls)
    typical = runs[min(range(len(runs)), key=lambda j: abs(runs[j]["wall_ms"] - median))]
    hops, models = typical["connector_hops"], typical["model_calls"]
    arch_floor_ms = (hops * args.latency_s + models * args.model_delay_s) * 1000
    round_trip_floor = sum(
        max(round(w["duration_ms"] / (args.latency_s * 1000)) if args.latency_s else 0, 1)
        for w in typical["waves"])
    return {
        "case": args.case, "runs": args.latency_runs,
        "latency_s": {"each_source": args.latency_s, "model": args.model_delay_s},
        "tiers": ["anthropic", "rules", "human"],
        "model_reply_cites": [f"{c['source']}:{c['ref']}" for c in lw.model_reply["cited"]],
        "wall": _stats(walls),
        "issue_floor_ms": round(floor_ms, 1),
        "ratio_to_issue_floor": round(median / floor_ms, 3),
        "target": {"limit_ratio": TARGET_LATENCY_RATIO, "floor_ms": round(floor_ms, 1),
                   "measured_ratio": round(median / floor_ms, 3),
                   "pass": median <= TARGET_LATENCY_RATIO * floor_ms},
        "architecture": {
            "connector_hops": hops, "model_calls": models,
            "floor_ms": round(arch_floor_ms, 1),
            "formula": f"{hops} hops x {args.latency_s} s + {models} x {args.model_delay_s} s",
            "ratio_to_architecture_floor": round(median / arch_floor_ms, 3),
            "latency_units_on_critical_path": round_trip_floor,
            "latency_units_floor_ms": round(
                (round_trip_floor * args.latency_s + models * args.model_delay_s) * 1000, 1),
            "latency_units_note": "each hop rounded to whole multiples of the injected latency "
                                  "(a hop whose slowest call makes k dependent or serialised "
                                  "round trips costs k units)",
        },
        "typical_run": typical,
        "notes": [
            "hops are counted from the timed connector calls of each run: a new hop starts "
            "when a call starts after every earlier call has ended (intake's Stripe customer "
            "lookup(s), the playbooks' queries, the queries that use other queries' results "
            "via expand, model follow-ups)",
            "diagnose_ms is the diagnose node (prompt, gateway, model, validation); rest_ms is "
            "wall minus connector hops minus diagnose: graph steps, checkpoints, record",
            *_LOCK_NOTES.get(lw.mode, []),
        ],
    }


_THROUGHPUT_NOTES = [
    "where it breaks (clickhouse http): connectors/clickhouse/client.py "
    "ClickHouseClient._query_sync holds the connector's one threading.Lock for a whole HTTP "
    "round trip, so every ClickHouse query of every investigation in the process runs one "
    "at a time (clickhouse_client_lock: hold ~ one round trip, wait = the queue)",
    "each queued query also holds a worker of the event loop's default thread pool "
    "(ClickHouseClient.query/columns -> asyncio.to_thread; default_thread_pool_workers), so "
    "other to_thread work waits for a worker too: docs search (connectors/docs/connector.py "
    "DocsConnector.search) and PyGithub (connectors/github/client.py); "
    "clickhouse_worker_thread_wait is the wait of ClickHouse queries for a worker",
    "calls that outlive the call budget (AgentSettings.call_budget_s, 20 s) fail "
    "deadline_exceeded in core/resilience/policy.py ResiliencePolicy._attempt; repeated "
    "failures open the connector's breaker, later calls fail circuit_open; the model's "
    "citations of clickhouse evidence are then not among the gathered evidence, the gateway "
    "rejects the answer (agent/nodes/diagnose.py _citation_check) and the rule tier answers",
]


async def throughput(lw: LatencyWorld, args: argparse.Namespace) -> dict[str, Any]:
    """Section c: `--total` investigations, `--concurrency` in flight at once."""
    for lock in (lw.ch_lock, lw.docs_lock):
        if lock is not None:
            lock.reset()
    if lw.ch_queue is not None:
        lw.ch_queue.waits_ms.clear()
    lw.log.by_op.clear()
    lw.log.failures.clear()
    semaphore = asyncio.Semaphore(args.concurrency)
    models_before = len(lw.sandbox.received("anthropic"))
    before = _requests(lw)
    done = 0
    step = max(1, args.total // 5)

    async def one(i: int) -> dict[str, Any]:
        nonlocal done
        async with semaphore:
            record = await lw.inv.investigate(lw.ticket,
                                              investigation_id=f"bench_{i}_{uuid.uuid4().hex[:8]}")
        done += 1
        if done % step == 0:
            _log(f"  [c] {done}/{args.total} done ({time.perf_counter() - began:.1f} s)")
        return record

    cpu = CpuTotals()
    watch = CpuWatch(lw.threads(), cpu)
    watch.start()
    began = time.perf_counter()
    outcomes = await asyncio.gather(*(one(i) for i in range(args.total)), return_exceptions=True)
    elapsed = time.perf_counter() - began
    watch.stop()
    records = [o for o in outcomes if isinstance(o, dict)]
    errors = Counter(f"{type(o).__name__}: {str(o)[:200]}" for o in outcomes
                     if isinstance(o, BaseException))
    walls = [r["wall_ms"] for r in records]
    tiers = Counter(r["tier"] for r in records)
    degraded = Counter(s for r in records for s in r["degraded_sources"])
    single = statistics.median(walls) if walls else 0.0
    ideal = args.concurrency / (single / 1000) * 60 if single else 0.0
    report: dict[str, Any] = {
        "case": args.case, "total": args.total, "concurrency": args.concurrency,
        "completed": len(records), "exceptions": dict(errors),
        "elapsed_s": round(elapsed, 2),
        "investigations_per_minute": round(len(records) / elapsed * 60, 1),
        "wall": _stats(walls),
        "tiers": dict(tiers), "degraded_sources": dict(degraded),
        "failed_calls": dict(lw.log.failures),
        "model_requests": len(lw.sandbox.received("anthropic")) - models_before,
        "http_requests": {m: n - before[m] for m, n in _requests(lw).items()},
        "connector_call_ms": {k: _stats(v) for k, v in sorted(lw.log.by_op.items())},
        "default_thread_pool_workers": min(32, (os.cpu_count() or 1) + 4),
        "cpu": cpu.report(len(records) or None, "investigation"),
    }
    problems = []
    if len(records) < args.total:
        problems.append(f"{args.total - len(records)} investigations raised: {dict(errors)}")
    if tiers.get("anthropic", 0) < len(records):
        problems.append(f"{len(records) - tiers.get('anthropic', 0)} of {len(records)} "
                        f"investigations were not answered by the model tier ({dict(tiers)})")
    if lw.log.failures:
        problems.append(f"failed connector calls: {dict(lw.log.failures)}")
    report["problems"] = problems
    if lw.ch_lock is not None:
        report["clickhouse_client_lock"] = _lock_report(lw.ch_lock)
    if lw.ch_queue is not None:
        report["clickhouse_worker_thread_wait"] = _stats(lw.ch_queue.waits_ms)
    if lw.docs_lock is not None:
        report["docs_index_lock"] = _lock_report(lw.docs_lock)
    report["notes"] = [
        "one SandboxWorld, one ModelSandbox, one investigator (one compiled graph, one "
        "AsyncSqliteSaver on ':memory:', one connector set) shared by all investigations",
        "wall is the record's wall_ms (from investigate() to its record; time waiting for the "
        "semaphore is not in it); investigations_per_minute = completed / elapsed",
        f"if nothing were shared, {args.concurrency} in flight at the sequential wall "
        f"({round(single)} ms median here) would give about {round(ideal)} per minute",
        "the sandboxes' servers (uvicorn, chDB behind the ClickHouse HTTP endpoint, the "
        "model sandbox) run in threads of this same process and take their share of the GIL "
        "(cpu: sandbox_server_threads_s)",
        *(_THROUGHPUT_NOTES if lw.mode == "http" else []),
    ]
    return report


def _injection(args: argparse.Namespace, mode: str) -> dict[str, str]:
    return {
        "http_mounts": f"LoopbackServer.set_latency({args.latency_s}) on "
                       f"{', '.join(HTTP_MOUNTS)} (every HTTP answer)",
        "clickhouse": (
            "real clickhouse-connect HTTP client against sandbox.apis.clickhouse.http_routes "
            f"(chDB) mounted on the world's server, set_latency({args.latency_s}) per HTTP answer"
            if mode == "http" else
            f"in-process chDB; the connector's run awaits asyncio.sleep({args.latency_s}) "
            "before delegating (once per operation, outside the client's lock)"),
        "docs": (f"the connector's run awaits asyncio.sleep({args.latency_s}) before delegating"
                 if args.docs == "run" else
                 f"DocsClient.search time.sleep({args.latency_s}) in its worker thread first"),
        "model": f"ModelSandbox Reply(delay_s={args.model_delay_s}) on the anthropic endpoint",
    }


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    a = report.get("instant_rules")
    if a:
        out["a_instant_rules"] = {
            "median_ms": a["with_real_sandbox_connectors"]["median_ms"],
            "p95_ms": a["with_real_sandbox_connectors"]["p95_ms"],
            "framework_only_median_ms": a["framework_only"]["median_ms"],
            "framework_only_p95_ms": a["framework_only"]["p95_ms"],
            "target_pass": a["target"]["pass"]}
    for name, conf in report.get("configurations", {}).items():
        item: dict[str, Any] = {}
        if "latency" in conf:
            lat = conf["latency"]
            item["b_median_ms"] = lat["wall"]["median_ms"]
            item["b_ratio_to_1_3_s"] = lat["target"]["measured_ratio"]
            item["b_target_pass"] = lat["target"]["pass"]
            item["b_architecture_floor_ms"] = lat["architecture"]["floor_ms"]
            item["b_ratio_to_architecture_floor"] = lat["architecture"][
                "ratio_to_architecture_floor"]
        if "throughput" in conf:
            thr = conf["throughput"]
            item["c_per_minute"] = thr["investigations_per_minute"]
            item["c_wall_median_ms"] = thr["wall"].get("median_ms")
            item["c_wall_p95_ms"] = thr["wall"].get("p95_ms")
            item["c_answered_by_model"] = thr["tiers"].get("anthropic", 0)
            item["c_problems"] = thr["problems"]
        out[name] = item
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the chosen sections; return the report."""
    started = time.monotonic()
    report: dict[str, Any] = {"benchmark": "investigation"}
    with tempfile.TemporaryDirectory(prefix="sleuth-bench-") as tmp:
        data_dir = Path(tmp)
        if "a" in args.sections:
            _log(f"[a] instant sandboxes, rule tier: {args.runs} runs per case and mode")
            report["instant_rules"] = await instant(args, data_dir)
        if "b" in args.sections or "c" in args.sections:
            modes = ("http", "wrap") if args.clickhouse == "both" else (args.clickhouse,)
            report["configurations"] = {}
            for mode in modes:
                _log(f"[b/c] {args.case}, clickhouse {mode}: sources +{args.latency_s} s, "
                     f"model +{args.model_delay_s} s")
                conf: dict[str, Any] = {"latency_injection": _injection(args, mode)}
                async with AsyncExitStack() as stack:
                    lw = await _latency_setup(stack, args, data_dir, mode)
                    if "b" in args.sections:
                        conf["latency"] = await latency(lw, args)
                    if "c" in args.sections:
                        _log(f"[c] clickhouse {mode}: {args.total} investigations, "
                             f"{args.concurrency} in flight")
                        conf["throughput"] = await throughput(lw, args)
                report["configurations"][f"clickhouse_{mode}"] = conf
    report["summary"] = _summary(report)
    report["environment"] = {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                             "platform": platform.platform(),
                             "load_average_at_end": [round(v, 2) for v in os.getloadavg()]}
    report["elapsed_s"] = round(time.monotonic() - started, 2)
    return report


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print its JSON report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.investigation",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sections", default=SECTIONS,
                        help="which sections to run: any of a, b, c (default abc)")
    parser.add_argument("--cases-dir", type=Path, default=CASES_DIR)
    parser.add_argument("--runs", type=int, default=10, help="a: runs per case and mode")
    parser.add_argument("--case", default=DEFAULT_CASE, help="b, c: the case")
    parser.add_argument("--latency-s", type=float, default=0.3, help="b, c: per source")
    parser.add_argument("--model-delay-s", type=float, default=1.0, help="b, c: per model call")
    parser.add_argument("--latency-runs", type=int, default=5, help="b: sequential runs")
    parser.add_argument("--total", type=int, default=100, help="c: investigations in all")
    parser.add_argument("--concurrency", type=int, default=50, help="c: in flight at once")
    parser.add_argument("--clickhouse", choices=("http", "wrap", "both"), default="both",
                        help="b, c: how ClickHouse latency is injected (see above); both: "
                             "run b and c once each way (default)")
    parser.add_argument("--docs", choices=("run", "thread"), default="run",
                        help="b, c: how docs latency is injected (see above)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    if not args.sections or set(args.sections) - set(SECTIONS):
        parser.error("--sections takes letters among a, b, c")
    if min(args.runs, args.latency_runs, args.total, args.concurrency) < 1:
        parser.error("--runs, --latency-runs, --total and --concurrency must be >= 1")
    if args.latency_s <= 0 or args.model_delay_s < 0:
        parser.error("--latency-s must be > 0 and --model-delay-s >= 0")
    configure_logging(level="ERROR")
    report = asyncio.run(run(args))
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
