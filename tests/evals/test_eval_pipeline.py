"""The eval pipeline: replay cases, score the results, write reports, compare, gate."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from core.llm.types import Message, ModelRequest, RawCompletion, Usage
from evals.gate import ci_gate, promote
from evals.replay import (
    CassetteProvider,
    MissingRecordingError,
    ReplayOptions,
    read_results,
    replay_cases,
    request_key,
)
from evals.report import compare, html_report, junit
from evals.score import CaseExpectation, load_expectations, score
from playbooks.store import PlaybookStore
from sandbox.cases import discover, load_case
from service.commands.eval_cmd import app

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "evals" / "cases"
SUBSET = ["pub-01-double-charge", "pub-06-card-declined", "pub-10-bad-release"]
STATUSES = {"proposed", "pending_approval", "approved", "rejected", "executed", "blocked"}
SOURCES = {"clickhouse", "stripe", "github", "linear", "statuspage", "docs"}
runner = CliRunner()


def assert_valid_line(line: dict[str, Any]) -> None:
    """Check a line against the replay-results format v1."""
    keys = {"format", "case_id", "root_cause", "severity", "confidence", "cited", "actions",
            "escalated", "tier", "degraded_sources", "playbook", "wall_ms", "error"}
    assert keys <= set(line), keys - set(line)
    assert line["format"] == 1
    assert isinstance(line["case_id"], str) and line["case_id"]
    assert isinstance(line["wall_ms"], int | float) and line["wall_ms"] >= 0
    assert isinstance(line["cited"], list) and isinstance(line["actions"], list)
    if line["error"] is not None:
        assert isinstance(line["error"], str)
        return
    assert line["severity"] in ("low", "medium", "high")
    assert 0 <= line["confidence"] <= 1
    assert isinstance(line["escalated"], bool)
    assert isinstance(line["tier"], str)
    assert isinstance(line["degraded_sources"], list)
    for cite in line["cited"]:
        assert cite["source"] in SOURCES and isinstance(cite["ref"], str)
    for action in line["actions"]:
        assert action["status"] in STATUSES, action


@pytest.fixture(scope="module")
def subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three committed cases and a broken copy of a fourth (malformed case.yaml)."""
    root = tmp_path_factory.mktemp("cases")
    for name in SUBSET:
        shutil.copytree(CASES / name, root / name)
    broken = root / "zz-broken-case"
    shutil.copytree(CASES / "pub-09-key-rotated", broken)
    (broken / "case.yaml").write_text("format: 1\nid: zz-broken-case\nticket: [unclosed\n")
    return root


@pytest.fixture(scope="module")
def results(subset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out") / "results.jsonl"
    result = runner.invoke(app, ["replay", str(subset), "--out", str(out), "--workers", "4",
                                 "--processes", "1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return out


def test_replay_writes_one_valid_line_per_case(results: Path) -> None:
    lines = read_results(results)
    assert [ln["case_id"] for ln in lines] == [*SUBSET, "zz-broken-case"]
    for line in lines:
        assert_valid_line(line)
    good = [ln for ln in lines if ln["case_id"] in SUBSET]
    assert all(ln["error"] is None and ln["tier"] == "rules" for ln in good)
    # governance on: customer-visible actions wait for a person
    pub06 = next(ln for ln in good if ln["case_id"] == "pub-06-card-declined")
    assert {"type": "send_customer_reply", "status": "pending_approval"} in pub06["actions"]


def test_a_broken_case_gets_an_error_line_and_the_run_completes(results: Path) -> None:
    broken = next(ln for ln in read_results(results) if ln["case_id"] == "zz-broken-case")
    assert broken["error"] and "case.yaml" in broken["error"]
    assert broken["root_cause"] is None


def test_score_writes_every_report(subset: Path, results: Path, tmp_path: Path) -> None:
    md, page, xml, js = (tmp_path / n for n in ("s.md", "s.html", "junit.xml", "s.json"))
    result = runner.invoke(app, ["score", str(subset), str(results), "--md", str(md),
                                 "--html", str(page), "--junit", str(xml), "--json", str(js)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Root-cause accuracy" in md.read_text()
    body = page.read_text()
    assert body.count("<svg") >= 3 and "Confusion matrix" in body
    suite = ET.parse(xml).getroot()  # noqa: S314 - our own report
    cases = suite.findall(".//testcase")
    assert {c.get("name") for c in cases} == {*SUBSET, "zz-broken-case"}
    broken = next(c for c in cases if c.get("name") == "zz-broken-case")
    assert broken.find("error") is not None
    assert all(c.find("failure") is None for c in cases if c.get("name") in SUBSET)
    figures = json.loads(js.read_text())["overall"]
    # the broken case counts as wrong: 3 right of 4
    assert figures["cases"] == 4 and figures["errors"] == 1
    assert figures["root_cause_accuracy"] == pytest.approx(0.75)
    assert figures["safety_violations"] == 0
    assert figures["high_severity_false_positives"] == 0


def test_compare_shows_a_changed_line(subset: Path, results: Path, tmp_path: Path) -> None:
    lines = read_results(results)
    altered = [dict(ln) for ln in lines]
    target = next(ln for ln in altered if ln["case_id"] == "pub-06-card-declined")
    target["root_cause"] = "billing.quota_exceeded"
    target["cited"] = target["cited"][:1]
    new = tmp_path / "new.jsonl"
    new.write_text("".join(json.dumps(ln) + "\n" for ln in altered))
    outcome = compare(lines, altered, load_expectations(subset))
    assert list(outcome.changes) == ["pub-06-card-declined"]
    assert any(c.startswith("root_cause:") for c in outcome.changes["pub-06-card-declined"])
    assert any(c.startswith("cited:") for c in outcome.changes["pub-06-card-declined"])
    assert any("Root-cause accuracy" in r for r in outcome.regressions)
    result = runner.invoke(app, ["compare", str(results), str(new), str(subset)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "pub-06-card-declined" in result.output


# -- scoring rules, on made-up lines ------------------------------------------------


def _line(case_id: str, **kw: Any) -> dict[str, Any]:
    base = {"format": 1, "case_id": case_id, "root_cause": None, "severity": None,
            "confidence": 0.9, "cited": [], "actions": [], "escalated": False, "tier": "rules",
            "degraded_sources": [], "playbook": None, "wall_ms": 100, "error": None}
    return {**base, **kw}


def test_scoring_rules_for_evidence_safety_and_false_positives() -> None:
    case = load_case(CASES / "pub-01-double-charge")
    assert case.case.expected is not None
    cases = {"pub-01-double-charge": CaseExpectation("pub-01-double-charge",
                                                     case.case.expected)}
    expected = case.case.expected
    cited = [{"source": e.source, "ref": e.ref or "anything"} for e in expected.evidence]
    right = _line("pub-01-double-charge", root_cause=expected.root_cause.value,
                  severity=expected.severity.value, cited=cited, escalated=expected.escalate,
                  actions=[{"type": a.value, "status": "pending_approval"}
                           for a in expected.actions.propose])
    card = score([right], cases)
    assert card.overall["root_cause_accuracy"] == 1.0
    assert card.overall["evidence_recall"] == 1.0
    assert card.overall["action_recall"] == 1.0
    assert ci_gate(card) == []
    never = {a.value for a in expected.actions.never_execute}
    assert "issue_refund" not in never  # a refund is the fix for a double charge
    unsafe = {**right, "severity": "high",
              "actions": [{"type": "issue_refund", "status": "executed"},
                          {"type": "escalate_to_oncall", "status": "executed",
                           "approved_by": "dana"},
                          {"type": "add_internal_note", "status": "executed"}]
              + [{"type": t, "status": "executed"} for t in sorted(never)]}
    card = score([unsafe], cases)
    problems = ci_gate(card)
    assert any("issue_refund executed without approval" in p for p in problems)
    assert all(any(f"{t} executed but must never be" in p for p in problems) for t in never)
    assert not any("escalate_to_oncall" in p or "add_internal_note" in p for p in problems)
    if expected.severity.value != "high":
        assert card.overall["high_severity_false_positives"] == 1
    errored = _line("pub-01-double-charge", error="boom")
    card = score([errored], cases)
    assert card.overall["root_cause_accuracy"] == 0.0 and card.overall["errors"] == 1
    assert card.overall["evidence_recall"] == 0.0
    assert "<svg" in html_report(card)
    ET.fromstring(junit(card))  # noqa: S314 - our own report


# -- cassettes ------------------------------------------------------------------


class _Fake:
    provider, model = "fake", "fake-1"

    async def complete(self, request: ModelRequest, schema: type[BaseModel],
                       attempt: Any) -> RawCompletion:
        return RawCompletion(content={"answer": 42}, usage=Usage(input_tokens=7), model="fake-1")

    async def aclose(self) -> None:
        return None


async def test_cassettes_record_then_replay_and_a_miss_is_explicit(tmp_path: Path) -> None:
    request = ModelRequest(system="s", messages=[Message(role="user", content="hello")])
    recorder = CassetteProvider(tmp_path, _Fake())
    await recorder.complete(request, BaseModel, None)  # type: ignore[arg-type]
    assert (tmp_path / f"{request_key(request)}.json").is_file()
    player = CassetteProvider(tmp_path)
    served = await player.complete(request, BaseModel, None)  # type: ignore[arg-type]
    assert served.content == {"answer": 42} and served.usage.input_tokens == 7
    other = ModelRequest(system="s", messages=[Message(role="user", content="bye")])
    with pytest.raises(MissingRecordingError):
        await player.complete(other, BaseModel, None)  # type: ignore[arg-type]
    assert player.misses == [request_key(other)]


async def test_cassette_mode_fails_a_case_with_no_recording(tmp_path: Path) -> None:
    lines = await replay_cases([CASES / "pub-06-card-declined"],
                               ReplayOptions(mode="cassette", cassettes=tmp_path / "none"))
    assert_valid_line(lines[0])
    assert lines[0]["error"] and lines[0]["error"].startswith("cassette_missing")


# -- the promotion gate -------------------------------------------------------------------

IMPOSSIBLE = """  - id: never_seen
    description: a signal no world ever shows
    kind: exists
    select:
      query: invoices
      where: {data.status: {in: [no-such-status]}}
"""


@pytest.fixture
def store(tmp_path: Path) -> PlaybookStore:
    root = tmp_path / "playbooks"
    shutil.copytree(ROOT / "playbooks" / "library", root / "library")
    shutil.copy(ROOT / "playbooks" / "active.yaml", root / "active.yaml")
    folder = root / "library" / "billing-payment-failed"
    text = (folder / "1.0.0.yaml").read_text()
    assert "version: 1.0.0" in text and "require: [invoice_unpaid]" in text
    worse = text.replace("version: 1.0.0", "version: 1.1.0") \
        .replace("require: [invoice_unpaid]", "require: [invoice_unpaid, never_seen]") \
        .replace("signals:\n", "signals:\n" + IMPOSSIBLE, 1)
    (folder / "1.1.0.yaml").write_text(worse)
    (folder / "1.2.0.yaml").write_text(text.replace("version: 1.0.0", "version: 1.2.0"))
    store = PlaybookStore(root)
    assert store.load().errors == []
    return store


def test_the_gate_refuses_a_worse_version_and_accepts_an_equal_one(
        store: PlaybookStore) -> None:
    before = store.active_versions()["billing-payment-failed"]
    case = CASES / "pub-06-card-declined"
    refused = promote(store, "billing-payment-failed", "1.1.0", case)
    assert not refused.accepted
    assert any("root-cause accuracy" in r for r in refused.reasons), refused.reasons
    assert store.active_versions()["billing-payment-failed"] == before
    accepted = promote(store, "billing-payment-failed", "1.2.0", case)
    assert accepted.accepted, accepted.reasons
    assert store.active_versions()["billing-payment-failed"] == "1.2.0"
    missing = promote(store, "billing-payment-failed", "9.9.9", case)
    assert not missing.accepted and "cannot be used" in missing.reasons[0]


# -- THE CI GATE: every committed case, no safety violation, no high-severity FP ----------


@pytest.mark.timeout(300)
def test_ci_gate_on_every_committed_case() -> None:
    folders = discover(CASES)
    assert folders
    started = time.perf_counter()
    lines = asyncio.run(replay_cases(folders, ReplayOptions(workers=4, processes=2)))
    seconds = time.perf_counter() - started
    print(f"replayed {len(lines)} cases in {seconds:.1f} s")
    assert len(lines) == len(folders)
    for line in lines:
        assert_valid_line(line)
    assert [ln for ln in lines if ln["error"]] == []
    card = score(lines, load_expectations(CASES))
    assert ci_gate(card) == []
    assert card.overall["safety_violations"] == 0
    assert card.overall["high_severity_false_positives"] == 0
