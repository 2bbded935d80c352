"""Degraded sources never fail an investigation; a killed one resumes from its checkpoint."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.factory import investigator
from connectors.registry import build_connectors
from core.settings import Settings
from core.telemetry import Metrics
from sandbox.http import Status
from sandbox.world import SandboxWorld
from tests.agent.conftest import case_path, investigating

ROOT = Path(__file__).resolve().parents[2]


async def test_a_failing_source_is_recorded_as_degraded(
    settings: Settings, world_of: Callable[[str], SandboxWorld]
) -> None:
    world = world_of("pub-10-bad-release")
    world.server.set_default_fault("linear", Status(503))
    world.server.set_default_fault("statuspage", Status(500))
    async with investigating(world, settings) as inv:
        record = await inv.investigate(world.case.case.ticket)
    assert record["degraded_sources"] == ["linear", "statuspage"]
    assert record["diagnosis"]["root_cause"] == "regression.deploy"
    failed = [c for c in record["calls"] if not c["ok"]]
    assert failed and all(c["error"]["kind"] == "unavailable" for c in failed)


async def test_with_stripe_down_the_investigation_still_finishes(
    settings: Settings, world_of: Callable[[str], SandboxWorld]
) -> None:
    world = world_of("pub-06-card-declined")
    world.server.set_default_fault("stripe", Status(503))
    async with investigating(world, settings) as inv:
        record = await inv.investigate(world.case.case.ticket)
    assert record["customer"] is None
    assert "stripe" in record["degraded_sources"]
    assert {s["reason"] for s in record["skipped_queries"]} >= {"no value for customer.id"}
    assert record["diagnosis"] is not None


class Counting:
    """Wraps a connector and remembers every call made through it."""

    def __init__(self, inner: Any, seen: list[tuple[str, str, str]]) -> None:
        self.inner, self.seen = inner, seen

    async def run(self, operation: str, params: Any = None, **kw: Any) -> Any:
        self.seen.append((self.inner.name, operation, json.dumps(params, sort_keys=True,
                                                                  default=str)))
        return await self.inner.run(operation, params, **kw)

    async def aclose(self) -> None:
        await self.inner.aclose()


def run_child_until_killed(case_dir: Path, checkpoints: str) -> list[str]:
    """Start an investigation in a child process; SIGKILL it once 8 calls have finished."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "tests.agent.kill_target", str(case_dir), checkpoints, "inv_kill"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finished: list[str] = []
    deadline = time.monotonic() + 60
    assert child.stdout is not None
    try:
        while len(finished) < 8 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            assert event["source"] != "github"  # it hangs
            finished.append(event["key"])
        time.sleep(1.0)  # let the checkpointer write what finished
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert len(finished) >= 8, child.stderr.read() if child.stderr else ""
    return finished


async def test_a_killed_investigation_resumes_without_repeating_finished_calls(
    settings: Settings, tmp_path: Path, world_of: Callable[[str], SandboxWorld]
) -> None:
    checkpoints = str(tmp_path / "checkpoints.sqlite")
    finished = await asyncio.to_thread(run_child_until_killed, case_path("pub-10-bad-release"),
                                       checkpoints)

    world = world_of("pub-10-bad-release")
    seen: list[tuple[str, str, str]] = []
    built = build_connectors(world.connector_settings(), resilience=settings.resilience,
                             metrics=Metrics())
    counted = {name: Counting(c, seen) for name, c in built.items()}
    async with investigator(settings, connectors=counted, checkpoints=checkpoints) as inv:
        record = await inv.investigate_or_resume("inv_kill")
    ran_again = {f"{s}.{op}:{p}" for s, op, p in seen}
    assert ran_again.isdisjoint(finished), ran_again & set(finished)
    assert any(s == "github" for s, _, _ in seen)  # the unfinished call ran on resume
    assert record["diagnosis"]["root_cause"] == "regression.deploy"
    keys = [f"{c['source']}.{c['operation']}" for c in record["calls"]]
    assert len(record["calls"]) == len({json.dumps([c["source"], c["operation"], c["params"]],
                                                   sort_keys=True) for c in record["calls"]})
    assert keys  # the record holds every call, old and new
    for connector in built.values():
        await connector.aclose()
