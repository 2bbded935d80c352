"""The rule tier: hypothesis scoring, diagnoses, templates and the gateway's rules engine."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from core.domain import Diagnosis, Evidence, EvidenceRef, RootCause, Severity
from core.llm.types import Message, ModelRequest
from playbooks.rules import (
    MIN_SCORE,
    PlaybookRuleEngine,
    RuleInput,
    candidates,
    diagnose,
    render,
)
from playbooks.schema import Playbook
from playbooks.signals import QueryOutcome

T0 = datetime(2026, 9, 14, 10, 0, tzinfo=UTC)


def ev(ref: str, source: str = "clickhouse", **data: Any) -> Evidence:
    return Evidence(source=source, ref=ref, title=ref, summary="", data=data, observed_at=T0)


def ok(*items: Evidence) -> QueryOutcome:
    return QueryOutcome(list(items))


def failed() -> QueryOutcome:
    return QueryOutcome([], ok=False)


def hyp(hid: str, root_cause: str, **extra: Any) -> dict[str, Any]:
    return {"id": hid, "root_cause": root_cause, "severity": "medium", "reply": "default",
            **extra}


BASE: dict[str, Any] = {
    "id": "outage", "version": "1.0.0", "owner": "tests", "title": "Provider trouble",
    "applies_to": {"categories": ["errors"]},
    "queries": [{"id": "timeline", "source": "clickhouse", "operation": "error_timeline"},
                {"id": "incidents", "source": "statuspage", "operation": "incidents"},
                {"id": "bugs", "source": "linear", "operation": "search"}],
    "signals": [
        {"id": "errors", "description": "the workspace gets timeouts", "kind": "exists",
         "select": {"query": "timeline", "where": {"data.code": "timeout"}}},
        {"id": "incident", "description": "a provider incident is open", "kind": "exists",
         "select": {"query": "incidents"}},
        {"id": "noise", "kind": "exists",
         "select": {"query": "timeline", "where": {"data.code": "noise"}}},
        {"id": "bug", "description": "an open bug matches", "kind": "exists",
         "select": {"query": "bugs"}},
    ],
    "hypotheses": [
        hyp("provider_outage", "upstream.provider_outage", severity="high",
            require=["errors", "incident"], exclude=["noise"], base=0.4,
            weights={"incident": 0.4}, cite=["incident"], reply="outage",
            actions=[{"type": "escalate_to_oncall", "reason": "incident",
                      "params": {"incident": "{{ signals.incident.refs.0 }}",
                                 "second": "{{ signals.incident.refs.1 }}",
                                 "who": "{{ ticket.requester.name }}", "count": 3,
                                 "value": "{{ signals.errors.value }}"}}]),
        hyp("known_bug", "known_bug", require=["errors"], base=0.2,
            weights={"bug": 0.3, "errors": 0.1}),
    ],
    "replies": {
        "outage": "  Hi {{ ticket.requester.name }},\n\nsee {{ signals.incident.refs.0 }} "
                  "for {{ customer.plan }}.{{ customer.missing.deep }}\n",
        "default": "Hello {{ticket.requester.name}}",
    },
}


def make(**changes: Any) -> Playbook:
    raw = copy.deepcopy(BASE)
    raw.update(changes)
    return Playbook.model_validate(raw)


OUTCOMES = {
    "timeline": ok(ev("errors:timeout", code="timeout")),
    "incidents": ok(ev("inc-1", source="statuspage"), ev("inc-2", source="statuspage")),
    "bugs": ok(),
}
VARIABLES = {"ticket": {"requester": {"name": "Ana"}}, "customer": {"plan": "pro"}}


def rule_input(playbook: Playbook | None = None, variables: dict[str, Any] | None = None,
               **outcomes: QueryOutcome) -> RuleInput:
    playbook = playbook or make()
    return RuleInput([playbook], {playbook.id: {**OUTCOMES, **outcomes}},
                     VARIABLES if variables is None else variables)


def scores(ri: RuleInput) -> dict[str, float]:
    return {c.hypothesis.id: round(c.score, 6) for c in candidates(ri)}


# --- scoring ---------------------------------------------------------------------------------

def test_scores_are_base_plus_weights_of_holding_signals_best_first() -> None:
    ranked = candidates(rule_input())
    assert [c.hypothesis.id for c in ranked] == ["provider_outage", "known_bug"]
    assert ranked[0].score == pytest.approx(0.8)
    assert ranked[1].score == pytest.approx(0.3)  # bug does not hold: 0.2 + 0.1
    assert not any(c.uncertain for c in ranked)
    assert scores(rule_input(bugs=ok(ev("BUG-1", source="linear")))) == \
        {"provider_outage": 0.8, "known_bug": 0.6}


def test_require_must_all_hold() -> None:
    assert scores(rule_input(incidents=ok())) == {"known_bug": 0.3}
    assert scores(rule_input(timeline=ok(ev("x", code="other")))) == {}


def test_exclude_rules_a_hypothesis_out() -> None:
    noisy = ok(ev("errors:timeout", code="timeout"), ev("n", code="noise"))
    assert scores(rule_input(timeline=noisy)) == {"known_bug": 0.3}


def test_best_wins() -> None:
    diagnosis = diagnose(rule_input())
    assert diagnosis.root_cause is RootCause.PROVIDER_OUTAGE
    assert diagnosis.severity is Severity.HIGH
    assert diagnosis.confidence == pytest.approx(0.8)
    assert diagnosis.escalate is False
    assert diagnosis.summary == "Provider trouble: the workspace gets timeouts; " \
                                "a provider incident is open."


def test_the_other_hypothesis_wins_when_its_weights_do() -> None:
    bugs = ok(*(ev(f"BUG-{i}", source="linear") for i in range(2)))
    playbook = make(hypotheses=[BASE["hypotheses"][0],
                                hyp("known_bug", "known_bug", require=["errors"], base=0.6,
                                    weights={"bug": 0.35}, escalate=True)])
    diagnosis = diagnose(rule_input(playbook, bugs=bugs))
    assert diagnosis.root_cause is RootCause.KNOWN_BUG
    assert diagnosis.confidence == pytest.approx(0.95)
    assert diagnosis.escalate is True
    assert diagnosis.reply_draft == "Hello Ana"


def test_confidence_is_capped() -> None:
    playbook = make(hypotheses=[hyp("h", "known_bug", require=["errors"], base=1.0,
                                    weights={"errors": 0.5})])
    assert diagnose(rule_input(playbook)).confidence == pytest.approx(0.97)


@pytest.mark.parametrize("base", [0.0, 0.1, MIN_SCORE - 0.01])
def test_below_min_score_is_no_fault_found(base: float) -> None:
    playbook = make(hypotheses=[hyp("weak", "known_bug", require=["errors"], base=base)])
    diagnosis = diagnose(rule_input(playbook))
    assert diagnosis.root_cause is RootCause.NO_FAULT_FOUND
    assert diagnosis.escalate is True
    assert diagnosis.confidence <= 0.3
    assert diagnosis.severity is Severity.LOW
    assert diagnosis.cited == []
    assert diagnosis.reply_draft == ""
    assert [a.type for a in diagnosis.actions] == ["add_internal_note"]


def test_min_score_itself_is_enough() -> None:
    playbook = make(hypotheses=[hyp("just", "known_bug", require=["errors"], base=MIN_SCORE)])
    diagnosis = diagnose(rule_input(playbook))
    assert diagnosis.root_cause is RootCause.KNOWN_BUG
    assert diagnosis.confidence == pytest.approx(MIN_SCORE)


def test_no_candidates_at_all() -> None:
    for ri in (RuleInput([], {}), rule_input(timeline=ok())):
        diagnosis = diagnose(ri)
        assert diagnosis.root_cause is RootCause.NO_FAULT_FOUND
        assert diagnosis.escalate is True and diagnosis.confidence < 0.5


def test_no_outcomes_for_a_playbook_means_nothing_holds() -> None:
    playbook = make()
    ri = RuleInput([playbook], {}, VARIABLES)
    assert candidates(ri) == []
    assert diagnose(ri).root_cause is RootCause.NO_FAULT_FOUND


# --- uncertainty and close calls ------------------------------------------------------------

def test_a_failed_source_lowers_confidence() -> None:
    # `bug` is a weight of known_bug; its source failed
    playbook = make(hypotheses=[hyp("known_bug", "known_bug", require=["errors"], base=0.7)
                                | {"weights": {"bug": 0.2}}])
    sure = diagnose(rule_input(playbook))
    unsure = diagnose(rule_input(playbook, bugs=failed()))
    assert [c.uncertain for c in candidates(rule_input(playbook, bugs=failed()))] == [True]
    assert sure.confidence == pytest.approx(0.7)
    assert unsure.confidence == pytest.approx(0.7 * 0.8)
    assert unsure.root_cause is RootCause.KNOWN_BUG


def test_a_failed_source_behind_an_exclude_lowers_confidence() -> None:
    playbook = make(hypotheses=[hyp("known_bug", "known_bug", require=["errors"],
                                    exclude=["incident"], base=0.7)])
    unsure = diagnose(rule_input(playbook, incidents=failed()))
    assert unsure.root_cause is RootCause.KNOWN_BUG
    assert unsure.confidence == pytest.approx(0.56)


def test_a_failed_source_of_an_unrelated_signal_does_not() -> None:
    playbook = make(hypotheses=[hyp("known_bug", "known_bug", require=["errors"], base=0.7)])
    assert diagnose(rule_input(playbook, bugs=failed())).confidence == pytest.approx(0.7)


def test_close_runner_up_with_another_root_cause_lowers_confidence() -> None:
    playbook = make(hypotheses=[
        hyp("a", "known_bug", require=["errors"], base=0.6),
        hyp("b", "regression.deploy", require=["errors"], base=0.55),
    ])
    diagnosis = diagnose(rule_input(playbook))
    assert diagnosis.root_cause is RootCause.KNOWN_BUG
    assert diagnosis.confidence == pytest.approx(0.6 * 0.85)


def test_distant_runner_up_or_same_root_cause_does_not() -> None:
    distant = make(hypotheses=[hyp("a", "known_bug", require=["errors"], base=0.6),
                               hyp("b", "regression.deploy", require=["errors"], base=0.45)])
    assert diagnose(rule_input(distant)).confidence == pytest.approx(0.6)
    same = make(hypotheses=[hyp("a", "known_bug", require=["errors"], base=0.6),
                            hyp("b", "known_bug", require=["errors"], base=0.59)])
    assert diagnose(rule_input(same)).confidence == pytest.approx(0.6)


def test_uncertain_and_close_multiply() -> None:
    playbook = make(hypotheses=[
        hyp("a", "known_bug", require=["errors"], base=0.6, weights={"bug": 0.1}),
        hyp("b", "regression.deploy", require=["errors"], base=0.55),
    ])
    diagnosis = diagnose(rule_input(playbook, bugs=failed()))
    assert diagnosis.confidence == pytest.approx(round(0.6 * 0.8 * 0.85, 3))


def test_candidates_across_playbooks() -> None:
    first = make()
    second = make(id="other", title="Other playbook",
                  hypotheses=[hyp("dep", "regression.deploy", require=["bug"], base=0.9)])
    ri = RuleInput([first, second],
                   {"outage": OUTCOMES, "other": {**OUTCOMES, "bugs": ok(ev("B", "linear"))}},
                   VARIABLES)
    ranked = candidates(ri)
    assert [(c.playbook.id, c.hypothesis.id) for c in ranked] == \
        [("other", "dep"), ("outage", "provider_outage"), ("outage", "known_bug")]
    diagnosis = diagnose(ri)
    assert diagnosis.root_cause is RootCause.DEPLOY_REGRESSION
    assert diagnosis.summary == "Other playbook: an open bug matches."
    assert diagnosis.cited == [EvidenceRef(source="linear", ref="B")]


# --- citations -------------------------------------------------------------------------------

def test_cited_refs_come_from_holding_require_and_cite_signals_only() -> None:
    playbook = make(hypotheses=[hyp("h", "known_bug", require=["errors"], base=0.5,
                                    weights={"incident": 0.2}, cite=["bug", "errors"])])
    diagnosis = diagnose(rule_input(playbook, bugs=ok()))
    # incident holds but is only a weight; bug is cited but does not hold
    assert diagnosis.cited == [EvidenceRef(source="clickhouse", ref="errors:timeout")]
    with_bug = diagnose(rule_input(playbook, bugs=ok(ev("BUG-7", "linear"))))
    assert with_bug.cited == [EvidenceRef(source="clickhouse", ref="errors:timeout"),
                              EvidenceRef(source="linear", ref="BUG-7")]


def test_cited_refs_are_deduplicated_and_in_order() -> None:
    diagnosis = diagnose(rule_input())
    assert diagnosis.cited == [EvidenceRef(source="clickhouse", ref="errors:timeout"),
                               EvidenceRef(source="statuspage", ref="inc-1"),
                               EvidenceRef(source="statuspage", ref="inc-2")]


def test_cite_limit_applies_to_citations() -> None:
    signals = copy.deepcopy(BASE["signals"])
    signals[1]["cite_limit"] = 1
    diagnosis = diagnose(rule_input(make(signals=signals)))
    assert EvidenceRef(source="statuspage", ref="inc-2") not in diagnosis.cited
    assert EvidenceRef(source="statuspage", ref="inc-1") in diagnosis.cited


def test_a_cited_combination_that_does_not_hold_cites_nothing() -> None:
    signals = [*copy.deepcopy(BASE["signals"]),
               {"id": "both", "kind": "all", "signals": ["incident", "bug"]}]
    playbook = make(signals=signals,
                    hypotheses=[hyp("h", "known_bug", require=["errors"], base=0.5,
                                    cite=["both"])])
    diagnosis = diagnose(rule_input(playbook, bugs=ok()))
    assert diagnosis.cited == [EvidenceRef(source="clickhouse", ref="errors:timeout")]


def test_many_matching_items_still_give_a_diagnosis() -> None:
    timeline = ok(*(ev(f"errors:timeout:{i}", code="timeout") for i in range(60)))
    diagnosis = diagnose(rule_input(timeline=timeline))
    assert diagnosis.root_cause is RootCause.PROVIDER_OUTAGE
    assert 0 < len(diagnosis.cited) <= 50


# --- templates -------------------------------------------------------------------------------

def test_reply_template_rendering() -> None:
    diagnosis = diagnose(rule_input())
    # missing values become empty; the result is stripped
    assert diagnosis.reply_draft == "Hi Ana,\n\nsee inc-1 for pro."


def test_reply_with_missing_variables() -> None:
    diagnosis = diagnose(rule_input(variables={}))
    assert diagnosis.reply_draft == "Hi ,\n\nsee inc-1 for ."


def test_action_params_are_rendered() -> None:
    (action,) = diagnose(rule_input()).actions
    assert action.type == "escalate_to_oncall"
    assert action.reason == "incident"
    assert action.params == {"incident": "inc-1", "second": "inc-2", "who": "Ana", "count": 3,
                             "value": "1"}


def test_action_params_for_refs_that_are_not_there() -> None:
    signals = copy.deepcopy(BASE["signals"])
    signals[1]["cite_limit"] = 1
    (action,) = diagnose(rule_input(make(signals=signals))).actions
    assert action.params["incident"] == "inc-1"
    assert action.params["second"] == ""


@pytest.mark.parametrize(("template", "expected"), [
    ("{{ a.b }}", "x"), ("{{a.b}}", "x"), ("{{   a.b   }}", "x"), ("[{{ a.n }}]", "[0]"),
    ("{{ a.list.1 }}", "q"), ("{{ a.none }}|{{ zzz }}", "|"), ("  {{ a.b }}  ", "x"),
    ("{{ A.b }}", "{{ A.b }}"), ("no placeholders", "no placeholders"),
    ("{{ a.flag }}", "False"),
])
def test_render(template: str, expected: str) -> None:
    variables = {"a": {"b": "x", "n": 0, "list": ["p", "q"], "none": None, "flag": False}}
    assert render(template, variables) == expected


# --- the gateway's rules tier ---------------------------------------------------------------

def request(task: str = "diagnose", **context: Any) -> ModelRequest:
    return ModelRequest(messages=[Message(role="user", content="ticket")], task=task,
                        context=context)


def test_engine_answers_diagnose_with_rule_input() -> None:
    engine = PlaybookRuleEngine()
    ri = rule_input()
    answer = engine.answer(request(rules=ri), Diagnosis)
    assert answer == diagnose(ri).model_dump(mode="json")
    assert answer is not None and answer["root_cause"] == "upstream.provider_outage"
    assert Diagnosis.model_validate(answer) == diagnose(ri)
    assert engine.name == "playbooks"


@pytest.mark.parametrize(("task", "context"), [
    ("triage", {"rules": "use the real one"}),
    ("diagnose", {}),
    ("diagnose", {"rules": None}),
    ("diagnose", {"rules": {"playbooks": [], "outcomes": {}}}),
    ("diagnose", {"other": "x"}),
])
def test_engine_has_no_answer_otherwise(task: str, context: dict[str, Any]) -> None:
    if context.get("rules") == "use the real one":
        context = {"rules": rule_input()}
    assert PlaybookRuleEngine().answer(request(task, **context), Diagnosis) is None


def test_engine_answers_no_fault_found_when_nothing_holds() -> None:
    answer = PlaybookRuleEngine().answer(request(rules=RuleInput([], {})), Diagnosis)
    assert answer is not None
    assert answer["root_cause"] == "no_fault_found" and answer["escalate"] is True
