"""Webhook acknowledgement latency at a sustained rate, against `sleuth serve` on loopback.

The service runs as its own process in embedded mode (SQLite, workers in the API
process investigating what arrives, sandbox worlds of the pub-* cases). This process
is an open-loop load generator: request i is due at t0 + i/rate whatever happened to
the earlier ones, and its latency is measured from that due time, so a stalled server
cannot hide behind a stalled client (no coordinated omission). Every request is a
signed Zendesk webhook of a new event, except that every `--dup-every`-th request
re-delivers an earlier event, as ticket systems do.

After the run the database is read: every event that got a 202 must have exactly one
investigation (none lost), and no event may have two (none duplicated).
Target: p99 <= 50 ms at 200 requests/s for 60 s on this 2-core machine.

Run:  .venv/bin/python -m benchmarks.webhook_load [--rate 200] [--duration 60] [--out FILE]

One JSON object goes to stdout (and to --out); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from core.domain import Ticket
from governance.db import make_engine
from sandbox.cases import discover, load_case
from sandbox.models import closed_port as free_port

ROOT = Path(__file__).resolve().parent.parent
CASES_DIR = ROOT / "evals" / "cases"
TARGET_P99_MS = 50.0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)



def start_server(data_dir: Path, port: int, secret: str, concurrency: int,
                 extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `sleuth serve` in embedded mode; return the process."""
    env = {**os.environ,
           "SLEUTH_DATA_DIR": str(data_dir),
           "SLEUTH_SERVICE__ZENDESK_SECRET": secret,
           "SLEUTH_SERVICE__SANDBOX_CASES": str(CASES_DIR),
           "SLEUTH_QUEUE__MAX_DEPTH": "1000000",
           "SLEUTH_QUEUE__CONCURRENCY": str(concurrency),
           "SLEUTH_TELEMETRY__LOG_LEVEL": "WARNING",
           **(extra_env or {})}
    sleuth = Path(sys.executable).parent / "sleuth"
    log_file = (data_dir / "serve.log").open("wb")
    return subprocess.Popen(  # noqa: S603 - our own entry point
        [str(sleuth), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT)


async def wait_healthy(base: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Wait until /healthz answers 200."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=base, timeout=1.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"sleuth serve exited with {process.returncode}")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("sleuth serve did not become healthy in time")


def demo_tickets(pattern: str) -> list[Ticket]:
    """Return the tickets of the cases whose folder name starts with `pattern`."""
    return [load_case(f).case.ticket for f in discover(CASES_DIR) if f.name.startswith(pattern)]


def build_requests(tickets: list[Ticket], count: int, secret: str,
                   dup_every: int) -> list[tuple[str, bytes, dict[str, str]]]:
    """Return (event id, body, headers) per request; every dup_every-th repeats an earlier one."""
    from service.webhooks.payloads import zendesk_body
    from service.webhooks.signatures import zendesk_headers

    out: list[tuple[str, bytes, dict[str, str]]] = []
    for i in range(count):
        if dup_every and i >= dup_every and i % dup_every == 0:
            out.append(out[i - dup_every // 2])
            continue
        event_id = f"bench-{i}-{secrets.token_hex(4)}"
        body = zendesk_body(tickets[i % len(tickets)])
        headers = zendesk_headers(secret, body, invocation_id=event_id)
        headers["Content-Type"] = "application/json"
        out.append((event_id, body, headers))
    return out


async def load(base: str, requests: list[tuple[str, bytes, dict[str, str]]], rate: float,
               ) -> list[dict[str, Any]]:
    """Send the requests open-loop at `rate` per second; return one result per request."""
    results: list[dict[str, Any]] = [{} for _ in requests]
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    async with httpx.AsyncClient(base_url=base, timeout=10.0, limits=limits) as client:

        async def one(i: int, due: float) -> None:
            event_id, body, headers = requests[i]
            try:
                response = await client.post("/v1/webhooks/zendesk", content=body,
                                             headers=headers)
                status = response.status_code
                payload = response.json() if status == 202 else {}
            except httpx.HTTPError as exc:
                status, payload = 0, {"error": type(exc).__name__}
            results[i] = {"event_id": event_id, "status": status,
                          "latency_ms": (time.perf_counter() - due) * 1000,
                          "investigation_id": payload.get("investigation_id"),
                          "duplicate": payload.get("duplicate")}

        tasks = []
        t0 = time.perf_counter() + 0.2
        for i in range(len(requests)):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
            if i and i % int(rate * 10) == 0:
                _log(f"  sent {i}/{len(requests)}")
        await asyncio.gather(*tasks)
    return results


def check_database(db_path: Path, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Compare what the service answered with what it stored."""
    engine = make_engine(f"sqlite:///{db_path}")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, event_id, status FROM investigations")).all()
    engine.dispose()
    by_event: dict[str, list[str]] = {}
    for row in rows:
        by_event.setdefault(row.event_id, []).append(row.id)
    accepted = {r["event_id"]: r["investigation_id"] for r in results if r["status"] == 202}
    lost = [e for e, iid in accepted.items() if iid not in by_event.get(e, [])]
    duplicated = [e for e, ids in by_event.items() if len(ids) > 1]
    answered_ids: dict[str, set[str]] = {}
    for r in results:
        if r["status"] == 202:
            answered_ids.setdefault(r["event_id"], set()).add(r["investigation_id"])
    split = [e for e, ids in answered_ids.items() if len(ids) > 1]
    statuses = Counter(row.status for row in rows)
    return {"events_accepted": len(accepted), "investigation_rows": len(rows),
            "lost": len(lost), "duplicated_rows": len(duplicated),
            "redeliveries_given_other_ids": len(split), "statuses": dict(statuses)}


def percentile(values: list[float], q: float) -> float:
    """Return the q-quantile (0..1) of values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark; return the JSON report."""
    secret = secrets.token_urlsafe(24)
    data_dir = Path(tempfile.mkdtemp(prefix="sleuth-load-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tickets = demo_tickets(args.cases)
    count = int(args.rate * args.duration)
    requests = build_requests(tickets, count, secret, args.dup_every)
    _log(f"starting sleuth serve on {base} (data in {data_dir})")
    extra = {"SLEUTH_SERVICE__EMBEDDED_WORKERS": "false"} if args.no_workers else None
    process = start_server(data_dir, port, secret, args.workers, extra)
    try:
        await wait_healthy(base, process, 60)
        _log(f"warming up, then {count} webhooks at {args.rate}/s for {args.duration} s")
        await load(base, build_requests(tickets, 20, secret, 0), 20)
        started = time.perf_counter()
        results = await load(base, requests, args.rate)
        elapsed = time.perf_counter() - started
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    latencies = [r["latency_ms"] for r in results if r["status"] == 202]
    codes = Counter(str(r["status"]) for r in results)
    stored = check_database(data_dir / "sleuth.db", results)
    p99 = percentile(latencies, 0.99) if latencies else float("inf")
    return {
        "benchmark": "webhook_load", "mode": "embedded (SQLite, in-process workers)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rate_per_s": args.rate, "duration_s": args.duration, "requests": count,
        "achieved_rate_per_s": round(count / elapsed, 1),
        "embedded_worker_concurrency": args.workers,
        "status_codes": dict(codes),
        "ack_latency_ms": {
            "p50": round(percentile(latencies, 0.50), 2) if latencies else None,
            "p95": round(percentile(latencies, 0.95), 2) if latencies else None,
            "p99": round(p99, 2), "max": round(max(latencies), 2) if latencies else None,
            "mean": round(statistics.fmean(latencies), 2) if latencies else None},
        "stored": stored,
        "investigations_finished_during_run": stored["statuses"].get("completed", 0)
        + stored["statuses"].get("waiting_approval", 0),
        "target": {"p99_ms": TARGET_P99_MS, "met": p99 <= TARGET_P99_MS
                   and stored["lost"] == 0 and stored["duplicated_rows"] == 0
                   and codes.get("202", 0) == count},
        "data_dir": str(data_dir),
    }


def main() -> None:
    """Parse arguments, run, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=4,
                        help="investigations the embedded workers run at once")
    parser.add_argument("--no-workers", action="store_true",
                        help="the API alone: no workers investigate during the run")
    parser.add_argument("--cases", default="pub-", help="case folder prefix of the tickets")
    parser.add_argument("--dup-every", type=int, default=20,
                        help="every Nth request re-delivers an earlier event (0: never)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    text_out = json.dumps(report, indent=2)
    print(text_out)
    if args.out:
        args.out.write_text(text_out + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
