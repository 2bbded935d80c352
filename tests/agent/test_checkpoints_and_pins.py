"""Checkpoints on PostgreSQL, and reruns with the exact playbook versions an investigation used."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from core.errors import NotFoundError
from core.settings import AgentSettings, Settings
from sandbox.world import SandboxWorld
from tests.agent.conftest import investigating

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
async def test_checkpoints_on_postgresql(
    settings: Settings, postgres_url: str, world_of: Callable[[str], SandboxWorld]
) -> None:
    world = world_of("pub-07-quota-used-up")
    async with investigating(world, settings, checkpoints=postgres_url) as inv:
        record = await inv.investigate(world.case.case.ticket)
        snapshot = await inv.graph.aget_state({"configurable": {
            "thread_id": record["investigation_id"]}})
    assert record["diagnosis"]["root_cause"] == "billing.quota_exceeded"
    assert snapshot.values["record"]["investigation_id"] == record["investigation_id"]
    assert snapshot.next == ("wait",)  # the customer reply waits for a person
    # a second process (a fresh checkpointer) sees the finished investigation
    async with investigating(world, settings, checkpoints=postgres_url) as other:
        again = await other.investigate_or_resume(record["investigation_id"])
    assert again["diagnosis"] == record["diagnosis"]


async def test_rerun_with_the_playbook_versions_an_investigation_used(
    settings: Settings, tmp_path: Path, world_of: Callable[[str], SandboxWorld]
) -> None:
    root = tmp_path / "playbooks"
    shutil.copytree(ROOT / "playbooks" / "library", root / "library")
    shutil.copy(ROOT / "playbooks" / "active.yaml", root / "active.yaml")
    # a newer version that no longer recognises the cause
    source = root / "library" / "billing-payment-failed" / "1.0.0.yaml"
    (root / "library" / "billing-payment-failed" / "2.0.0.yaml").write_text(
        source.read_text().replace("version: 1.0.0", "version: 2.0.0")
        .replace("in: [open, uncollectible]", "in: [nothing]"))
    custom = settings.model_copy(update={"agent": AgentSettings(playbooks_dir=root)})
    world = world_of("pub-06-card-declined")
    async with investigating(world, custom) as inv:
        before = await inv.investigate(world.case.case.ticket)
    used = {p["id"]: p["version"] for p in before["playbooks"]}
    assert used["billing-payment-failed"] == "1.0.0"

    (root / "active.yaml").write_text((root / "active.yaml").read_text().replace(
        "billing-payment-failed: 1.0.0", "billing-payment-failed: 2.0.0"))
    async with investigating(world, custom) as inv:
        changed = await inv.investigate(world.case.case.ticket)
    assert changed["diagnosis"]["root_cause"] != "billing.payment_failed"

    async with investigating(world, custom, pins=used) as inv:
        rerun = await inv.investigate(world.case.case.ticket)
    assert rerun["playbooks"] == before["playbooks"]
    assert rerun["diagnosis"]["root_cause"] == "billing.payment_failed"

    with pytest.raises(NotFoundError):
        async with investigating(world, custom, pins={"known-bug": "9.9.9"}) as inv:
            await inv.investigate(world.case.case.ticket)
