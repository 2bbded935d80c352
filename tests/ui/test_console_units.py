"""The console's pure parts: operations figures, presentation helpers, the command line."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from core.settings import load_settings
from governance.approvals_store import ApprovalRequest
from service.commands import console_cmd
from service.insights import Percentiles, compute, observed_breakers
from service.investigations import Investigation
from tests.ui.conftest import ROOT
from ui.auth import reviewer_for_email
from ui.present import Masker, cited_evidence, financial_amount, money, safe_url, time_left

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def _investigation(n: int, *, status: str = "completed", wall_ms: float = 1000.0,
                   calls: list[dict[str, Any]] | None = None,
                   tiers: list[dict[str, Any]] | None = None,
                   actions: list[dict[str, Any]] | None = None,
                   confidence: float = 0.9, day: int = 0) -> Investigation:
    at = NOW - timedelta(days=day, minutes=n)
    record = {"calls": calls or [], "tiers_tried": tiers or [], "actions": actions or [],
              "escalated": False, "tier": "rules"}
    return Investigation(id=f"inv_{n}", dedupe_key=str(n), source="zendesk",
                         ticket_id=str(n), event_id="e", ticket="{}", status=status,
                         created_at=at, updated_at=at, wall_ms=wall_ms, tier="rules",
                         confidence=confidence, root_cause="billing.duplicate_charge",
                         record=json.dumps(record))


def _call(source: str, ms: float, ok: bool = True, kind: str = "timed_out") -> dict[str, Any]:
    return {"source": source, "operation": "x", "ok": ok, "duration_ms": ms,
            "error": None if ok else {"kind": kind, "code": "timeout"}}


def _tier(provider: str, outcome: str, ms: float, tokens: int = 0,
          cost: str = "0") -> dict[str, Any]:
    return {"tier": provider, "provider": provider, "model": "m", "outcome": outcome,
            "latency_ms": ms, "usage": {"input_tokens": tokens, "output_tokens": tokens // 10},
            "cost_usd": cost}


def _approval(n: int, status: str, minutes: float, edited: bool = False) -> ApprovalRequest:
    created = NOW - timedelta(hours=1)
    return ApprovalRequest(
        id=n, idempotency_key=str(n), investigation_id="inv_1", action_index=n,
        action_type="send_customer_reply", level="customer_visible", taxonomy_version="1.0.0",
        status=status, created_at=created, expires_at=created + timedelta(hours=4),
        resolved_at=created + timedelta(minutes=minutes) if status != "pending" else None,
        edited_text="edited" if edited else None)


def test_percentiles_interpolate_and_handle_small_sets() -> None:
    assert Percentiles.of([]) == Percentiles(0, None, None, None)
    assert Percentiles.of([5.0]) == Percentiles(1, 5.0, 5.0, 5.0)
    p = Percentiles.of([float(v) for v in range(1, 101)])
    assert (p.p50, p.p95, p.p99) == pytest.approx((50.5, 95.05, 99.01))


def test_operations_figures_from_records_and_approvals() -> None:
    rows = [
        _investigation(1, calls=[_call("stripe", 100), _call("github", 50, ok=False)],
                       tiers=[_tier("anthropic", "timeout", 30000),
                              _tier("openai", "ok", 2000, tokens=1000, cost="0.01")]),
        _investigation(2, calls=[_call("stripe", 300), _call("docs", 5, ok=False,
                                                                kind="disabled")],
                       tiers=[_tier("anthropic", "skipped:sensitive", 0),
                              _tier("rules", "no_rule_matched", 2)],
                       actions=[{"status": "pending_approval", "approval_id": 7}],
                       status="waiting_approval", day=1),
        _investigation(3, wall_ms=3000.0, actions=[{"status": "executed"}], confidence=0.4),
    ]
    approvals = [_approval(1, "approved", 10), _approval(2, "rejected", 30),
                 _approval(3, "approved", 20, edited=True), _approval(4, "approved", 40),
                 _approval(5, "pending", 0)]
    out = compute(rows, approvals, since=NOW - timedelta(days=7), until=NOW)
    assert out.investigations == 3
    assert out.by_status == {"completed": 2, "waiting_approval": 1}
    assert out.investigation_ms.p50 == 1000.0
    stripe, github = ({s.name: s for s in out.connectors}[n] for n in ("stripe", "github"))
    assert (stripe.calls, stripe.failures, stripe.latency_ms.p50) == (2, 0, 200.0)
    assert github.error_rate == 1.0
    assert "docs" not in {s.name for s in out.connectors}  # disabled is not a call
    providers = {s.name: s for s in out.providers}
    assert providers["anthropic"].calls == 1 and providers["anthropic"].error_rate == 1.0
    assert providers["rules"].failures == 0  # no rule matched is routing, not a fault
    assert out.automation_rate == 1.0  # both completed ones needed nobody
    assert out.decided == 4 and out.override_rate == 0.5  # one rejected, one edited
    assert out.turnaround_s.p50 == 25 * 60
    assert [d.key for d in out.per_day] == ["2026-05-03", "2026-05-04"]
    assert sum(d.cost_usd for d in out.per_day) == pytest.approx(0.01)
    assert sum(u.input_tokens for u in out.per_investigation) == 1000
    assert [p.confidence for p in out.confidence] == [0.9, 0.4, 0.9]  # oldest first


def test_breakers_are_inferred_from_the_newest_calls() -> None:
    newest = _investigation(1, calls=[{**_call("github", 1, ok=False),
                                       "error": {"kind": "unavailable",
                                                 "code": "circuit_open"}}])
    older = _investigation(2, calls=[_call("github", 1), _call("stripe", 1)], day=1)
    states = {b.name: b.status for b in observed_breakers(load_settings(None), [newest, older])}
    assert states["connector:github"] == "open"
    assert states["connector:stripe"] == "closed"
    assert states["connector:linear"] == "unknown"


def test_presentation_helpers() -> None:
    assert money(49900, "usd") == "499.00 USD"
    assert money(1500, "jpy") == "1,500 JPY"
    assert time_left(NOW + timedelta(minutes=90), NOW) == "1 h 30 min left"
    assert time_left(NOW - timedelta(seconds=30), NOW) == "expired 30 s ago"
    assert safe_url("javascript:alert(1)") is None
    assert safe_url("https://x.test/a (b)") == "https://x.test/a%20%28b%29"
    mask = Masker({"<PERSON_1>": "Henry Osei", "<EMAIL_1>": "henry@dovetail.com"},
                  extra=["Dovetail Docs"])
    assert mask("Hi henry osei, henry@dovetail.com at Dovetail Docs") == \
        "Hi <PERSON_1>, <EMAIL_1> at <REDACTED>"
    evidence = [{"ref": "ch_1", "data": {"amount": 49900, "amount_refunded": 900,
                                         "currency": "usd"}}]
    assert financial_amount({"charge_id": "ch_1"}, None, evidence) == \
        "the whole of ch_1: 490.00 USD (no amount given: full refund)"
    assert financial_amount({"currency": "eur"}, 1234, []) == "12.34 EUR"


def test_a_citation_of_any_item_of_a_source_matches_its_first_item() -> None:
    record = {"diagnosis": {"cited": [{"source": "clickhouse", "ref": None}]},
              "evidence": [{"source": "clickhouse", "ref": "timeline:ws", "title": "t",
                            "summary": "s", "url": None}]}
    [view] = cited_evidence(record, str)
    assert (view.ref, view.missing, view.url) == ("timeline:ws", None, None)


def test_oidc_emails_map_to_configured_reviewers() -> None:
    mapping = {"Dana@Example.com": "dana"}
    assert reviewer_for_email("dana@example.com ", mapping) == "dana"
    assert reviewer_for_email("", mapping) is None
    assert reviewer_for_email("eve@example.com", mapping) is None


def test_the_console_command_serves_the_app_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_call(argv: list[str]) -> int:
        seen.append(argv)
        return 0

    monkeypatch.setattr(console_cmd.subprocess, "call", fake_call)
    import typer

    app = typer.Typer()
    app.command()(console_cmd.console)
    result = CliRunner().invoke(app, ["--port", "8612"])
    assert result.exit_code == 0, result.output
    [argv] = seen
    assert argv[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert argv[4].endswith("ui/app.py")
    flags = dict(zip(argv[5::2], argv[6::2], strict=True))
    assert flags["--server.address"] == "127.0.0.1" and flags["--server.port"] == "8612"
    assert flags["--server.headless"] == "true"
    assert flags["--browser.gatherUsageStats"] == "false"


def test_ci_installs_chromium_before_running_the_tests() -> None:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    check = next(i for i, line in enumerate(lines) if "command -v chromium" in line)
    install = next(i for i, line in enumerate(lines)
                   if "apt-get install -y chromium chromium-driver" in line)
    tests = next(i for i, line in enumerate(lines) if ".venv/bin/pytest" in line)
    assert check < install < tests
