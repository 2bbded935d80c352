"""Scale-out under a crash: a `sleuth worker` is SIGKILLed mid-investigation, nothing is lost.

Two worker processes share a procrastinate queue on PostgreSQL (a schema of this test's
own) and investigate the demo cases against sandbox worlds slowed down so that
investigations are in flight. One worker is killed with SIGKILL while it runs some; a
replacement starts. Every accepted ticket must end completed or waiting for approval
exactly once, none failed, and no effector may have acted twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import ProgrammingError

from core.settings import load_settings
from sandbox.cases import load_case
from service.context import build_context
from tests.conftest import postgres_schema, reachable

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
CASES = REPO / "evals" / "cases"
FINAL = ("completed", "waiting_approval")
BUDGET_S = 90.0
WORKER = ("from service.cli import main; main()",)
# a Zendesk ticket with a note and a refund for approval, one linking a known Linear
# issue, a card decline, an e-mail ticket: internal actions run, others wait for people
DEMO_CASES = ("pub-01-double-charge", "pub-02-gemini-30s-timeout", "pub-06-card-declined",
              "pub-10-bad-release")
EVENTS = ("evt-1", "evt-2", "evt-3")


@pytest.fixture
def schema_url(postgres_url: str) -> Iterator[str]:
    """Yield a URL whose search_path is a fresh PostgreSQL schema, dropped afterwards."""
    with postgres_schema(postgres_url, "sigkill") as url:
        yield url


class Workers:
    """`sleuth worker` subprocesses, their logs, and killing them all at the end."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        """Start a worker called `name`, its stderr (JSON logs) to a file."""
        log = (self.logs / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-c", *WORKER, "worker", "--name", name, "--concurrency", "4",
             "--env-file", str(self.logs / "none.env")],
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def tail(self, lines: int = 25) -> str:
        """Return the end of every worker's log, for a failure's message."""
        parts = []
        for name, proc in self.procs.items():
            text_ = (self.logs / f"{name}.log").read_text(errors="replace").splitlines()
            parts.append(f"--- {name} (exit {proc.poll()}) ---\n" + "\n".join(text_[-lines:]))
        return "\n".join(parts)

    def stop_all(self) -> dict[str, int | None]:
        """SIGTERM every worker still running, then SIGKILL what has not exited."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return {name: proc.returncode for name, proc in self.procs.items()}


def query(engine: Engine, sql: str, **params: Any) -> list[Any]:
    """Run a read query and return its rows."""
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params))


async def poll(check: Callable[[], bool], within: float) -> bool:
    """Poll `check()` (run in a thread) until it holds; return False after `within` s."""
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def wait_for(check: Callable[[], bool], within: float, what: str,
                   workers: Workers) -> None:
    """Poll `check()` until it holds, or fail with the workers' logs."""
    if not await poll(check, within):
        pytest.fail(f"timed out waiting for {what}\n{workers.tail()}", pytrace=False)


def assert_finished_once(engine: Engine, ids: list[str], diagnostics: str) -> None:
    """Assert that each investigation announced its final state exactly once."""
    finals: Counter[str] = Counter()
    for inv_id, data in query(engine, "SELECT investigation_id, data FROM "
                                      "investigation_events"):
        if json.loads(data).get("step") in FINAL:
            finals[inv_id] += 1
    assert finals == Counter(dict.fromkeys(ids, 1)), diagnostics


def assert_no_action_repeated(engine: Engine, killed: list[str]) -> None:
    """Assert that every effector key was executed once (a repeat answers `duplicate`)."""
    executed: Counter[str] = Counter()
    for (payload,) in query(engine, "SELECT payload FROM audit_entries "
                                    "WHERE kind = 'action_executed'"):
        entry = json.loads(payload)
        if entry["status"] == "executed":
            executed[entry["idempotency_key"]] += 1
    assert executed, "the demo cases execute internal actions; none was audited"
    assert max(executed.values()) == 1, executed
    ledger = query(engine, "SELECT key, investigation_id, status, claims FROM effector_ledger")
    assert set(executed) <= {r.key for r in ledger if r.status == "done"}, ledger
    # failed: the outside system refused (say, a note on an e-mail ticket); never retried
    assert all(r.status in ("done", "failed") for r in ledger), ledger
    # a key is claimed again only by the run that took over a killed investigation
    assert all(r.claims == 1 or r.investigation_id in killed for r in ledger), ledger


@pytest.fixture
def case_dir(tmp_path: Path) -> Path:
    """Return a folder with four demo cases (each worker starts a world per case it sees)."""
    folder = tmp_path / "cases"
    folder.mkdir()
    for name in DEMO_CASES:
        (folder / name).symlink_to(CASES / name)
    return folder


@pytest.fixture
def cases(case_dir: Path) -> list[Path]:
    """Return the demo case folders."""
    return sorted(case_dir.iterdir())


async def test_a_sigkilled_worker_loses_no_investigation_and_repeats_no_action(
        schema_url: str, tmp_path: Path, case_dir: Path, cases: list[Path]) -> None:
    redis = reachable("127.0.0.1", 6379)
    overrides: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"), "database_url": schema_url,
        "queue": {"backend": "procrastinate", "heartbeat_s": 1, "stalled_after_s": 3},
        "service": {"sandbox_cases": str(case_dir), "sandbox_latency_s": 0.3},
    }
    if redis:
        overrides |= {"breaker_backend": "redis", "redis_url": "redis://127.0.0.1:6379/15"}
    test_started = time.monotonic()
    settings = load_settings(env_file=None, **overrides)
    # tables first (the workers then find them); each worker applies procrastinate's schema
    # and langgraph's checkpoint tables itself, under advisory locks, at the same time
    ctx = build_context(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLEUTH_")}
    env |= {
        "SLEUTH_QUEUE__BACKEND": "procrastinate", "SLEUTH_DATABASE_URL": schema_url,
        "SLEUTH_QUEUE__HEARTBEAT_S": "1", "SLEUTH_QUEUE__STALLED_AFTER_S": "3",
        "SLEUTH_DATA_DIR": str(tmp_path / "data"),
        "SLEUTH_SERVICE__SANDBOX_CASES": str(case_dir),
        "SLEUTH_SERVICE__SANDBOX_LATENCY_S": "0.3", "SLEUTH_TELEMETRY__LOG_LEVEL": "INFO",
    }
    if redis:
        env |= {"SLEUTH_BREAKER_BACKEND": "redis", "SLEUTH_REDIS_URL": "redis://127.0.0.1:6379/15"}
    workers = Workers(env, tmp_path)
    engine = ctx.engine
    try:
        workers.start("w-a")
        workers.start("w-b")

        def registered() -> bool:
            try:
                return query(engine, "SELECT count(*) FROM procrastinate_workers")[0][0] >= 2
            except ProgrammingError:  # no worker has applied procrastinate's schema yet
                return False
        await wait_for(registered, 60, "both workers to register", workers)
        started = time.monotonic()
        booted = started - test_started

        # four tickets, each updated three times (twelve events), and one event delivered twice
        tickets = [load_case(case).case.ticket for case in cases]
        deliveries = [(t, e) for e in EVENTS for t in tickets]
        for ticket, event_id in [*deliveries, deliveries[0]]:
            await ctx.accept(ticket.source, event_id, ticket)

        # kill w-a while it runs investigations (two if it gets there quickly)
        def running_on_a(n: int) -> bool:
            return query(engine, "SELECT count(*) FROM investigations WHERE status = 'running' "
                                 "AND worker = 'w-a'")[0][0] >= n
        if not await poll(lambda: running_on_a(2), 3):
            await wait_for(lambda: running_on_a(1), 5, "w-a to run an investigation", workers)
        workers.procs["w-a"].send_signal(signal.SIGKILL)
        workers.procs["w-a"].wait(5)
        # what it was running stays so until its heartbeat has been silent for 3 s
        killed = [r[0] for r in query(engine, "SELECT id FROM investigations WHERE "
                                              "status = 'running' AND worker = 'w-a'")]
        workers.start("w-c")

        def all_final() -> bool:
            rows = query(engine, "SELECT status FROM investigations")
            return all(r[0] in (*FINAL, "failed") for r in rows)
        await wait_for(all_final, BUDGET_S - (time.monotonic() - started),
                       "every investigation to finish", workers)
        took = time.monotonic() - started
        # jobs are acknowledged just after the investigation is stored
        await wait_for(lambda: query(engine, "SELECT count(*) FROM procrastinate_jobs WHERE "
                                             "status IN ('todo', 'doing')")[0][0] == 0,
                       15, "the queue to drain", workers)
        exits = workers.stop_all()
        diagnostics = workers.tail()

        rows = query(engine, "SELECT id, ticket_id, event_id, status, attempts, worker, error "
                             "FROM investigations")
        # one investigation per delivered event, the redelivery kept once
        assert len(rows) == len(deliveries), diagnostics
        assert {(r.ticket_id, r.event_id) for r in rows} == {
            (t.id, e) for t, e in deliveries}
        failed = [r for r in rows if r.status not in FINAL]
        assert not failed, f"{failed}\n{diagnostics}"
        # what w-a was running was taken over and finished elsewhere
        by_id = {r.id: r for r in rows}
        assert killed, diagnostics
        for inv_id in killed:
            assert by_id[inv_id].attempts >= 2 and by_id[inv_id].worker != "w-a", diagnostics

        assert_finished_once(engine, [r.id for r in rows], diagnostics)
        assert_no_action_repeated(engine, killed)

        jobs = dict(query(engine, "SELECT status::text, count(*) FROM procrastinate_jobs "
                                  "GROUP BY status"))
        assert "failed" not in jobs, jobs
        # the survivors stop gracefully on SIGTERM
        assert exits["w-b"] == 0 and exits["w-c"] == 0, (exits, diagnostics)
        assert took < BUDGET_S
        print(f"workers up in {booted:.1f} s; {len(rows)} investigations, {len(killed)} "
              f"taken over after SIGKILL, all final in {took:.1f} s")
    finally:
        workers.stop_all()
        await ctx.aclose()
