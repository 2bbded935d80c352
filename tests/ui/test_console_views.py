"""The investigation, operations and playbooks views through AppTest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from streamlit.testing.v1 import AppTest

from agent.runner import replay_line
from playbooks.store import DEFAULT_ROOT
from tests.ui.conftest import Seeded
from tests.ui.test_console_pages import REPLY_06, texts


def charts(at: AppTest) -> int:
    """Count the Vega-Lite charts on the page."""
    return len(at.get("vega_lite_chart"))


def table(at: AppTest, column: str) -> pd.DataFrame:
    """Return the first table on the page that has `column`."""
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, f"no table with a {column!r} column"
    return found[0]


def test_the_investigation_view_opens_from_the_queue(seeded: Seeded) -> None:
    reply = seeded.approval(*REPLY_06)
    at = seeded.app("ava")
    at.button(key=f"open-{reply.id}").click().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Investigation"]
    assert at.selectbox(key="investigation_id").value == reply.investigation_id
    events = table(at, "step")
    steps = list(events["step"])
    assert steps[0] == "worker" and "diagnose" in steps and steps[-1] == "waiting_approval"
    assert charts(at) == 1  # where the time went
    assert "diagnosed by `billing-payment-failed@1.0.0`" in texts(at)
    audit = table(at, "intact")
    assert next(iter(audit["kind"])) == "ticket_received" and set(audit["intact"]) == {"yes"}
    actions = table(at, "approval")
    assert f"{reply.id}: pending" in list(actions["approval"])
    at.button(key="audit_verify").click().run()
    assert "The audit chain is intact" in at.success[0].value


def test_the_operations_view_draws_its_charts(seeded: Seeded) -> None:
    at = seeded.app("lee")
    at.sidebar.radio(key="view").set_value("Operations").run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Investigations"] == "3"
    assert metrics["Automation rate"] == "–"  # none completed yet: all wait for people
    assert charts(at) == 8
    assert ":green-badge[connector:stripe: closed]" in texts(at)


@pytest.fixture
def playbooks_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Copy the playbooks and add a version 1.1.0 of billing-duplicate-charge."""
    root = tmp_path / "playbooks"
    shutil.copytree(DEFAULT_ROOT, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    folder = root / "library" / "billing-duplicate-charge"
    data = yaml.safe_load((folder / "1.0.0.yaml").read_text())
    data["version"] = "1.1.0"
    data["title"] = "Charged twice for one invoice (refund the newer charge)"
    (folder / "1.1.0.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("SLEUTH_AGENT__PLAYBOOKS_DIR", str(root))
    return root


def test_the_playbooks_view_diffs_versions_and_scores_the_latest_replay(
        seeded: Seeded, playbooks_root: Path) -> None:
    results = seeded.settings.data_dir / "evals" / "latest.jsonl"
    results.parent.mkdir()
    with results.open("w") as out:
        for case, inv in seeded.investigations.items():
            record = seeded.ctx.store.get(inv).record_dict()
            out.write(json.dumps(replay_line(case, record, wall_ms=1000.0)) + "\n")
    at = seeded.app("lee")
    at.sidebar.radio(key="view").set_value("Playbooks").run()
    assert not at.exception
    playbooks = table(at, "versions")
    row = playbooks[playbooks["playbook"] == "billing-duplicate-charge"].iloc[0]
    assert row["versions"] == "1.0.0, 1.1.0" and row["active"] == "1.0.0"
    at.selectbox(key="playbook_id").set_value("billing-duplicate-charge").run()
    diff = next(c.value for c in at.code if c.language == "diff")
    assert "-version: 1.0.0" in diff and "+version: 1.1.0" in diff
    assert "+title: Charged twice for one invoice (refund the newer charge)" in diff
    scores = table(at, "root_cause_accuracy")
    assert set(scores["playbook"]) == {"billing-duplicate-charge@1.0.0",
                                       "billing-payment-failed@1.0.0",
                                       "regression-deploy@1.0.0"}
    assert set(scores["root_cause_accuracy"]) == {"100.0%"}
    assert charts(at) == 1
