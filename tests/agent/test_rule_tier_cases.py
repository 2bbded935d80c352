"""Every committed case is diagnosed correctly by the rule tier alone (no model reachable)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.settings import Settings
from sandbox.cases import load_case
from sandbox.world import SandboxWorld
from tests.agent.conftest import CASES, case_path, expected_of, investigating, meets_evidence


@pytest.mark.parametrize("case_id", CASES)
async def test_rule_tier_diagnoses_the_case(
    case_id: str, settings: Settings, world_of: Callable[[str], SandboxWorld]
) -> None:
    case = load_case(case_path(case_id))
    expected = expected_of(case)
    world = world_of(case_id)
    async with investigating(world, settings) as inv:
        record = await inv.investigate(case.case.ticket)
    diagnosis = record["diagnosis"]
    assert record["tier"] == "rules"
    assert diagnosis["root_cause"] == expected.root_cause.value
    assert diagnosis["severity"] == expected.severity.value
    assert meets_evidence(record, case) == []
    proposed = {a["type"] for a in record["actions"]}
    assert {a.value for a in expected.actions.propose} <= proposed
    assert record["escalated"] == expected.escalate
    assert record["degraded_sources"] == []
    # a diagnosis never cites what was not gathered
    gathered = {(e["source"], e["ref"]) for e in record["evidence"]}
    assert {(c["source"], c["ref"]) for c in diagnosis["cited"]} <= gathered
    assert record["winning_playbook"] is not None
