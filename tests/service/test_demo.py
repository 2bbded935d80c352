"""`sleuth demo`: the service in-process, fed the demo tickets by signed webhooks."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from sqlalchemy import text
from typer.testing import CliRunner

from governance.db import make_engine
from service.api.auth import hash_token
from service.cli import app

runner = CliRunner()


def _investigations(data_dir: Path) -> list[tuple[str, str, str]]:
    engine = make_engine(f"sqlite:///{data_dir / 'sleuth.db'}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, source, status FROM investigations"))
            return [(r.id, r.source, r.status) for r in rows]
    finally:
        engine.dispose()


def test_the_demo_goes_through_the_webhooks_and_can_run_again(tmp_path: Path) -> None:
    env = {"COLUMNS": "220", "SLEUTH_DATA_DIR": str(tmp_path)}
    # 04 comes from Intercom, 05 and 06 from Zendesk, 07 by email (the generic webhook)
    result = runner.invoke(app, ["demo", "--match", "pub-0[4-7]*"], env=env)
    out = result.output
    assert result.exit_code == 0, out
    for path in ("/v1/webhooks/zendesk", "/v1/webhooks/intercom", "/v1/webhooks/generic"):
        assert f"POST {path}" in out
    assert "recognised: duplicate, the same investigation" in out
    assert "4 of 4 diagnosed as expected" in out
    assert "One investigation in full: pub-06-card-declined" in out
    assert "billing.payment_failed" in out and "upstream.provider_outage" in out
    assert "sleuth approvals list" in out

    # what was left behind is there to try: the investigations, approvals, a working token
    first = _investigations(tmp_path)
    assert sorted(source for _, source, _ in first) == ["generic", "intercom", "zendesk",
                                                        "zendesk"]
    assert {status for _, _, status in first} == {"waiting_approval"}
    pending = int(re.search(r"(\d+) proposed action\(s\) wait for a person", out)[1])  # type: ignore[index]
    assert pending >= 4
    token = re.search(r"Bearer (slt_[A-Za-z0-9_-]+)", out)[1]  # type: ignore[index]
    tokens = yaml.safe_load((tmp_path / "demo-tokens.yaml").read_text())["tokens"]
    assert [t["token_sha256"] for t in tokens] == [hash_token(token)]

    again = runner.invoke(app, ["demo", "--match", "pub-06*"], env=env)
    assert again.exit_code == 0, again.output
    assert "1 of 1 diagnosed as expected" in again.output
    second = _investigations(tmp_path)
    assert len(second) == 5  # new events: a new investigation; the earlier ones are kept
    assert {i for i, _, _ in first} < {i for i, _, _ in second}


def test_the_demo_refuses_a_pattern_without_cases(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--match", "nothing-*"],
                           env={"SLEUTH_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2
    assert "no cases matching" in result.output
