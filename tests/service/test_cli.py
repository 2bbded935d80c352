"""The `sleuth` command line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from service.cli import app

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "gateway-demo", "investigate", "connectors", "playbooks", "config"):
        assert command in result.output


def test_config_show_masks_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tiers = [{"name": "anthropic", "kind": "anthropic", "model": "claude-sonnet-4-6",
              "api_key": "sk-ant-api03-very-secret-key-material"}]
    monkeypatch.setenv("SLEUTH_LLM__TIERS", json.dumps(tiers))
    result = runner.invoke(app, ["config", "show", "--env-file", str(tmp_path / "none.env")])
    assert result.exit_code == 0, result.output
    assert "very-secret-key-material" not in result.output
    assert "**********" in result.output


def test_config_check_refuses_placeholder_secrets_in_production(
    monkeypatch: pytest.MonkeyPatch, tmp_path  # type: ignore[no-untyped-def]
) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "SLEUTH_PROFILE=production\n"
        "SLEUTH_DATABASE_URL=postgresql://sleuth@db/sleuth\n"
        'SLEUTH_LLM__TIERS=[{"name":"anthropic","kind":"anthropic",'
        '"model":"claude-sonnet-4-6","api_key":"changeme"}]\n'
    )
    result = runner.invoke(app, ["config", "check", "--env-file", str(env)])
    assert result.exit_code == 2
    assert "anthropic" in result.output and "placeholder" in result.output


def test_gateway_demo_runs_every_scenario() -> None:
    result = runner.invoke(app, ["gateway-demo"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for scenario in ("healthy", "Anthropic outage", "breaker open", "every model down",
                     "no rule matches", "stream cut after tokens"):
        assert scenario in result.output
    assert "sleuth_gateway_outcomes_total" in result.output
