"""Investigations per minute with 1, 2 and 4 scale-out workers (procrastinate on PostgreSQL).

For each worker count a fresh PostgreSQL schema holds the queue, checkpoints, audit,
approvals and investigations; breaker state is in Redis. `--tickets` tickets of the
pub-* cases are accepted up front (so the queue never runs dry), then N `sleuth worker`
processes start, each running `--concurrency` investigations at once against sandbox
worlds whose every source answers `--latency` seconds late (300 ms by default). The
throughput is the number of investigations finished (completed or waiting for
approval) per minute over a window after a warm-up (sandbox worlds start lazily, once
per case per worker, and starting a worker takes seconds): the window opens once
each worker has finished `--warm-investigations` on average and `--warmup` has passed.

Target: throughput grows at least 1.7x from 1 to 2 workers.

Run:  .venv/bin/python -m benchmarks.scaleout [--workers 1 2 4] [--window 45] [--out FILE]
Needs PostgreSQL at 127.0.0.1:5432 (database `test`) and Redis at 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text

from core.settings import load_settings
from governance.db import make_engine
from sandbox.cases import discover, load_case
from service.context import build_context
from service.investigations import Status

ROOT = Path(__file__).resolve().parent.parent
CASES_DIR = ROOT / "evals" / "cases"
PG = "postgresql://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/14"
TARGET_RATIO = 1.7


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _env(url: str, data_dir: Path, args: argparse.Namespace) -> dict[str, str]:
    return {**os.environ,
            "SLEUTH_DATABASE_URL": url, "SLEUTH_DATA_DIR": str(data_dir),
            "SLEUTH_QUEUE__BACKEND": "procrastinate",
            "SLEUTH_QUEUE__CONCURRENCY": str(args.concurrency),
            "SLEUTH_BREAKER_BACKEND": "redis", "SLEUTH_REDIS_URL": REDIS,
            "SLEUTH_SERVICE__SANDBOX_CASES": str(CASES_DIR),
            "SLEUTH_SERVICE__SANDBOX_LATENCY_S": str(args.latency),
            "SLEUTH_TELEMETRY__LOG_LEVEL": "WARNING"}


def _start_workers(count: int, sleuth: Path, env: dict[str, str],
                   data_dir: Path) -> list[subprocess.Popen[bytes]]:
    processes = []
    for n in range(count):
        log = (data_dir / f"worker{n}.log").open("wb")
        processes.append(subprocess.Popen(  # noqa: S603 - our own entry point
            [str(sleuth), "worker", "--name", f"bench{n}"], env=env, cwd=ROOT,
            stdout=log, stderr=subprocess.STDOUT))
    return processes


async def one_run(workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """Measure one worker count; return its figures."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG}?options=-csearch_path%3D{schema}"
    data_dir = Path(tempfile.mkdtemp(prefix=f"sleuth-scale{workers}-"))
    env = _env(url, data_dir, args)
    settings = load_settings(
        env_file=None, database_url=url, data_dir=data_dir,
        queue={"backend": "procrastinate", "concurrency": args.concurrency},
        service={"sandbox_cases": str(CASES_DIR)})
    ctx = build_context(settings)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        await ctx.queue.setup()
        tickets = [load_case(f).case.ticket for f in discover(CASES_DIR)
                   if f.name.startswith("pub-")]
        for i in range(args.tickets):
            await ctx.accept("generic", f"scale-{i}", tickets[i % len(tickets)])
        sleuth = Path(sys.executable).parent / "sleuth"
        processes.extend(_start_workers(workers, sleuth, env, data_dir))
        started = time.monotonic()

        def finished() -> int:
            counts = ctx.store.counts()
            return counts.get(Status.COMPLETED.value, 0) + counts.get(
                Status.WAITING_APPROVAL.value, 0)

        # warm-up: every worker starts a sandbox world per case on first use, and worker
        # start-up itself takes seconds per process on 2 cores; measure after both
        warm_target = args.warm_investigations * workers
        while (time.monotonic() - started < args.warmup or finished() < warm_target) \
                and time.monotonic() - started < args.warmup_max:
            await asyncio.sleep(0.5)
            if any(p.poll() is not None for p in processes):
                raise RuntimeError(f"a worker exited; see {data_dir}")
        first, t_first = finished(), time.monotonic()
        warm_s = time.monotonic() - started
        _log(f"  {workers} worker(s): {first} finished after a {warm_s:.0f} s warm-up")
        await asyncio.sleep(args.window)
        last, t_last = finished(), time.monotonic()
        counts = ctx.store.counts()
        if counts.get(Status.QUEUED.value, 0) == 0:
            _log("  warning: the queue ran dry during the window; raise --tickets")
        per_min = (last - first) / (t_last - t_first) * 60
        _log(f"  {workers} worker(s): {per_min:.1f} investigations/min")
        return {"workers": workers, "warmup_s": round(warm_s, 1),
                "finished_in_window": last - first,
                "window_s": round(t_last - t_first, 1), "per_minute": round(per_min, 1),
                "failed": counts.get(Status.FAILED.value, 0), "statuses": counts,
                "queue_ran_dry": counts.get(Status.QUEUED.value, 0) == 0}
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        await ctx.aclose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Run every worker count; return the report."""
    runs = []
    for workers in args.workers:
        _log(f"run with {workers} worker(s)")
        runs.append(await one_run(workers, args))
    by_n = {r["workers"]: r["per_minute"] for r in runs}
    ratio = by_n[2] / by_n[1] if 1 in by_n and 2 in by_n and by_n[1] else None
    return {
        "benchmark": "scaleout", "engine": "procrastinate on PostgreSQL, breakers in Redis",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "latency_per_source_s": args.latency, "concurrency_per_worker": args.concurrency,
        "min_warmup_s": args.warmup, "runs": runs,
        "throughput_ratio_2_over_1": round(ratio, 2) if ratio else None,
        "throughput_ratio_4_over_1": round(by_n[4] / by_n[1], 2)
        if 1 in by_n and 4 in by_n and by_n[1] else None,
        "target": {"ratio_2_over_1": TARGET_RATIO,
                   "met": ratio is not None and ratio >= TARGET_RATIO},
    }


def main() -> None:
    """Parse arguments, run, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--concurrency", type=int, default=2,
                        help="investigations each worker runs at once")
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per source")
    parser.add_argument("--tickets", type=int, default=400)
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--warmup-max", type=float, default=180.0)
    parser.add_argument("--warm-investigations", type=int, default=15,
                        help="finished investigations per worker before the window opens")
    parser.add_argument("--window", type=float, default=45.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    out = json.dumps(report, indent=2)
    print(out)
    if args.out:
        args.out.write_text(out + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
