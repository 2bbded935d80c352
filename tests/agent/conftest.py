"""Helpers for graph tests: a case's sandbox world and an investigator over it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from agent.factory import investigator
from agent.runner import Investigator
from core.llm import ModelGateway
from core.settings import Settings, load_settings
from core.telemetry import Metrics
from sandbox.cases import LoadedCase, discover, load_case
from sandbox.world import SandboxWorld

CASES_DIR = Path(__file__).resolve().parents[2] / "evals" / "cases"
# the demo cases; the generated eval cases are scored by the eval replay gate (tests/evals)
CASES = [p.name for p in discover(CASES_DIR) if p.name.startswith("pub-")]


def case_path(case_id: str) -> Path:
    return CASES_DIR / case_id


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with no model tiers configured (rules, then a person) and a tmp data dir."""
    return load_settings(None, data_dir=tmp_path)


@pytest.fixture
def world_of() -> Iterator[Callable[[str], SandboxWorld]]:
    """Start sandbox worlds by case id; stop them after the test."""
    started: list[SandboxWorld] = []

    def start(case_id: str) -> SandboxWorld:
        world = SandboxWorld(load_case(case_path(case_id))).start()
        started.append(world)
        return world

    yield start
    for world in started:
        world.stop()


@asynccontextmanager
async def investigating(world: SandboxWorld, settings: Settings, *,
                        gateway: ModelGateway | None = None, checkpoints: str = ":memory:",
                        **kw: Any) -> AsyncIterator[Investigator]:
    """Yield an investigator whose connectors point at `world`."""
    kw.setdefault("effectors", lambda engine: world.effector_set(engine, settings.resilience))
    async with investigator(settings, world.connector_settings(), metrics=Metrics(),
                            gateway=gateway, checkpoints=checkpoints, **kw) as inv:
        yield inv


def expected_of(case: LoadedCase) -> Any:
    assert case.case.expected is not None
    return case.case.expected


def cited(record: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["source"], c["ref"]) for c in (record["diagnosis"] or {}).get("cited", [])}


def meets_evidence(record: dict[str, Any], case: LoadedCase) -> list[str]:
    """Return the expected evidence the record does not cite."""
    have = cited(record)
    missing = []
    for item in expected_of(case).evidence:
        ok = any(s == item.source for s, _ in have) if item.ref is None \
            else (item.source, item.ref) in have
        if not ok:
            missing.append(f"{item.source}:{item.ref}")
    return missing
