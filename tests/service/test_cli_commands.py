"""`sleuth connectors`, `sleuth investigate` and `sleuth playbooks` from the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "evals" / "cases" / "pub-06-card-declined"
runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"SLEUTH_DATA_DIR": str(tmp_path), "COLUMNS": "200"}


def test_connectors_list_shows_health_against_a_case(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["connectors", "list", "--case", str(CASE)], env=env)
    assert result.exit_code == 0, result.output
    for name in ("clickhouse", "stripe", "github", "linear", "statuspage", "docs"):
        assert name in result.output
    assert "down" not in result.output


def test_connectors_list_without_settings_reports_disabled(env: dict[str, str],
                                                           tmp_path: Path) -> None:
    result = runner.invoke(app, ["connectors", "list"],
                           env={**env, "SLEUTH_CONNECTOR_DOCS__ENABLED": "false"})
    assert result.exit_code == 0, result.output
    assert "disabled" in result.output
    assert "missing settings: api_key" in result.output


def test_connectors_run_one_operation_by_hand(env: dict[str, str]) -> None:
    result = runner.invoke(app, [
        "connectors", "run", "stripe", "find_customer", "--case", str(CASE),
        "-p", "email=marcus.feld@birchwoodapps.com", "--json"], env=env)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["evidence"][0]["ref"] == "cus_8tHI1tN5ajHMuC"


def test_connectors_run_reports_a_typed_error(env: dict[str, str]) -> None:
    result = runner.invoke(app, [
        "connectors", "run", "stripe", "charges", "--case", str(CASE),
        "-p", "customer_id=not-a-customer"], env=env)
    assert result.exit_code == 1
    assert "invalid_parameters" in result.output


def test_investigate_a_case_prints_the_replay_line(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["investigate", "--case", str(CASE), "--json"], env=env)
    assert result.exit_code == 0, result.output
    line = json.loads(result.output.strip().splitlines()[-1])
    assert line["format"] == 1
    assert line["case_id"] == "pub-06-card-declined"
    assert line["root_cause"] == "billing.payment_failed"
    assert line["tier"] == "rules"
    assert {"source": "stripe", "ref": "in_1V7GxguaHb7WnX3c4DMUgdYk"} in line["cited"]
    assert line["playbook"] == {"id": "billing-payment-failed", "version": "1.0.0"}


def test_investigate_a_ticket_file_refuses_a_broken_ticket(env: dict[str, str],
                                                          tmp_path: Path) -> None:
    broken = tmp_path / "ticket.yaml"
    broken.write_text("id: 1\nsubject: [unclosed\n")
    result = runner.invoke(app, ["investigate", "--ticket", str(broken)], env=env)
    assert result.exit_code == 2
    assert "ticket" in result.output


def test_playbooks_lint_list_show_diff_and_rollback(env: dict[str, str], tmp_path: Path) -> None:
    root = tmp_path / "playbooks"
    shutil.copytree(ROOT / "playbooks" / "library", root / "library")
    shutil.copy(ROOT / "playbooks" / "active.yaml", root / "active.yaml")
    newer = root / "library" / "known-bug" / "1.1.0.yaml"
    newer.write_text((root / "library" / "known-bug" / "1.0.0.yaml").read_text()
                     .replace("version: 1.0.0", "version: 1.1.0")
                     .replace("data.score: {gte: 2}", "data.score: {gte: 3}"))
    args = ["--root", str(root)]
    assert runner.invoke(app, ["playbooks", "lint", *args], env=env).exit_code == 0
    listed = runner.invoke(app, ["playbooks", "list", *args], env=env)
    assert "known-bug" in listed.output and "1.0.0, 1.1.0" in listed.output
    diff = runner.invoke(app, ["playbooks", "diff", "known-bug@1.0.0", "known-bug@1.1.0", *args],
                         env=env)
    assert "+      where: {data.open: true, data.labels: {contains: bug}, data.score: {gte: 3}}" \
        in diff.output
    assert runner.invoke(app, ["playbooks", "activate", "known-bug@1.1.0", *args],
                         env=env).exit_code == 0
    shown = runner.invoke(app, ["playbooks", "show", "known-bug", *args], env=env)
    assert "version: 1.1.0" in shown.output
    rolled = runner.invoke(app, ["playbooks", "rollback", "known-bug", *args], env=env)
    assert rolled.exit_code == 0 and "1.1.0 to 1.0.0" in rolled.output
    (root / "library" / "known-bug" / "1.1.0.yaml").write_text("id: known-bug\nversion: [\n")
    linted = runner.invoke(app, ["playbooks", "lint", *args], env=env)
    assert linted.exit_code == 1
    assert "1.1.0.yaml:" in linted.output
