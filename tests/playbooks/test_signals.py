"""Unit tests of playbooks.signals: field tests, paths, and every signal kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from core.domain import Evidence, EvidenceRef
from playbooks.schema import Match, Playbook, Selector, Signal
from playbooks.signals import (
    QueryOutcome,
    SignalResult,
    as_number,
    as_time,
    evaluate,
    evaluate_signal,
    matches,
    resolve,
    select,
)

T0 = datetime(2026, 9, 14, 10, 0, tzinfo=UTC)


def ev(ref: str, source: str = "clickhouse", **data: Any) -> Evidence:
    return Evidence(source=source, ref=ref, title=ref, summary=f"summary of {ref}", data=data,
                    observed_at=T0)


def m(**spec: Any) -> Match:
    return Match.model_validate(spec)


def sig(**spec: Any) -> Signal:
    return Signal.model_validate(spec)


def ok(*items: Evidence) -> QueryOutcome:
    return QueryOutcome(list(items))


def failed(*items: Evidence) -> QueryOutcome:
    return QueryOutcome(list(items), ok=False)


def refs(*names: str, source: str = "clickhouse") -> tuple[EvidenceRef, ...]:
    return tuple(EvidenceRef(source=source, ref=n) for n in names)


def run(signal: Signal, **outcomes: QueryOutcome) -> SignalResult:
    return evaluate_signal(signal, outcomes, {})


def playbook(signals: list[dict[str, Any]], queries: tuple[str, ...] = ("q", "r")) -> Playbook:
    return Playbook.model_validate({
        "id": "unit", "version": "1.0.0", "owner": "tests", "title": "unit tests",
        "applies_to": {"categories": ["any"]},
        "queries": [{"id": q, "source": "clickhouse", "operation": "op"} for q in queries],
        "signals": signals,
        "hypotheses": [{"id": "h", "root_cause": "known_bug", "severity": "low", "reply": "r"}],
        "replies": {"r": "hello"},
    })


# --- Match operators -------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    (3, True), (3.0, True), ("3", True), ("3.0", True), (4, False), ("three", False),
    (None, False),
])
def test_eq_number_matches_numbers_and_numeric_strings(value: Any, expected: bool) -> None:
    assert matches(value, m(eq=3)) is expected


@pytest.mark.parametrize(("value", "expected"), [
    ("active", True), ("Active", False), ("active ", False), (None, False), (1, False),
])
def test_eq_string_is_exact(value: Any, expected: bool) -> None:
    assert matches(value, m(eq="active")) is expected


def test_eq_string_number_equality_both_ways() -> None:
    assert matches(402, m(eq="402"))
    assert matches("402", m(eq=402))
    assert not matches("402", m(eq=401))


def test_eq_none_matches_missing_value() -> None:
    assert matches(None, m(eq=None))
    assert not matches(0, m(eq=None))


def test_ne() -> None:
    assert matches("past_due", m(ne="active"))
    assert not matches("active", m(ne="active"))
    assert not matches("5", m(ne=5))  # numeric equality counts for ne too
    assert matches(None, m(ne="active"))


def test_in() -> None:
    test = m(**{"in": ["provider_unavailable", "timeout", 504]})
    assert matches("timeout", test)
    assert matches("504", test)
    assert matches(504.0, test)
    assert not matches("rate_limited", test)
    assert not matches(None, test)


@pytest.mark.parametrize(("op", "bound", "value", "expected"), [
    ("gte", 3, 3, True), ("gte", 3, 2.99, False), ("gte", 3, "3", True),
    ("lte", 3, 3, True), ("lte", 3, 3.01, False), ("lte", 3, "2", True),
    ("gt", 3, 3, False), ("gt", 3, 3.5, True), ("gt", 3, "4", True),
    ("lt", 3, 3, False), ("lt", 3, 2, True), ("lt", 3, "-1", True),
])
def test_numeric_bounds(op: str, bound: float, value: Any, expected: bool) -> None:
    assert matches(value, m(**{op: bound})) is expected


@pytest.mark.parametrize("op", ["gte", "lte", "gt", "lt"])
@pytest.mark.parametrize("value", ["many", None, True, False, [1, 2], {"a": 1}, ""])
def test_numeric_bounds_never_hold_for_non_numbers(op: str, value: Any) -> None:
    assert matches(value, m(**{op: 0})) is False


def test_contains_on_strings_is_case_insensitive_substring() -> None:
    assert matches("Provider Unavailable", m(contains="unavail"))
    assert matches("errors:timeout", m(contains="errors:"))
    assert not matches("warnings:timeout", m(contains="errors:"))
    assert not matches(None, m(contains="x"))


def test_contains_on_lists_is_a_whole_item_match() -> None:
    labels = ["Bug", "p1", "provider:openai"]
    assert matches(labels, m(contains="bug"))
    assert matches(labels, m(contains="P1"))
    assert not matches(labels, m(contains="provider"))  # no substring match inside items
    assert not matches([], m(contains="bug"))


def test_exists_true_and_false() -> None:
    assert matches(0, m(exists=True))
    assert matches("", m(exists=True))
    assert not matches(None, m(exists=True))
    assert matches(None, m(exists=False))
    assert not matches(False, m(exists=False))


@pytest.mark.parametrize("spec", [{}, {"eq": 1, "ne": 2}, {"gte": 1, "lt": 3}, {"in": None},
                                  {"bogus": 1}])
def test_match_needs_exactly_one_operator(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Match.model_validate(spec)


# --- resolve, as_number, as_time -------------------------------------------------------------

def test_resolve_nested_paths_and_list_indexes() -> None:
    item = ev("e1", data_unused=None, top=[{"error_code": "timeout", "by": [1, 2, 3]}],
              nested={"a": {"b": "deep"}})
    assert resolve(item, "ref") == "e1"
    assert resolve(item, "source") == "clickhouse"
    assert resolve(item, "data.nested.a.b") == "deep"
    assert resolve(item, "data.top.0.error_code") == "timeout"
    assert resolve(item, "data.top.0.by.2") == 3
    assert resolve(item, "data.top.1.error_code") is None  # out of range
    assert resolve(item, "data.top.-1.error_code") is None
    assert resolve(item, "data.top.x") is None
    assert resolve(item, "data.nested.a.b.c") is None  # through a string
    assert resolve(item, "data.missing.deeper") is None
    assert resolve(item, "observed_at") == T0


def test_resolve_on_plain_mappings() -> None:
    variables = {"ticket": {"requester": {"name": "Ana"}}, "xs": [[0, 1], [2, 3]]}
    assert resolve(variables, "ticket.requester.name") == "Ana"
    assert resolve(variables, "xs.1.0") == 2
    assert resolve(variables, "ticket.nobody") is None


@pytest.mark.parametrize(("value", "expected"), [
    (3, 3.0), (2.5, 2.5), ("7", 7.0), (" 7 ", 7.0), ("-1.5", -1.5), ("x", None), (None, None),
    (True, None), (False, None), ([1], None),
])
def test_as_number(value: Any, expected: float | None) -> None:
    assert as_number(value) == expected


@pytest.mark.parametrize("value", [
    "2026-09-14T10:00:00Z", "2026-09-14T10:00:00+00:00", "2026-09-14T12:00:00+02:00",
    "2026-09-14T10:00:00", T0.timestamp(), int(T0.timestamp()), T0,
    datetime(2026, 9, 14, 10, 0),
])
def test_as_time_accepts_iso_z_offsets_epoch_and_datetimes(value: Any) -> None:
    parsed = as_time(value)
    assert parsed == T0
    assert parsed is not None and parsed.tzinfo is not None


@pytest.mark.parametrize("value", ["", "yesterday", None, True, [], {}])
def test_as_time_rejects_non_times(value: Any) -> None:
    assert as_time(value) is None


def test_as_time_out_of_range_epoch_is_none_not_a_crash() -> None:
    assert as_time(1_757_844_000_000) is None  # epoch milliseconds
    assert as_time(float("nan")) is None


# --- select ----------------------------------------------------------------------------------

def test_select_where_plain_values_and_matches() -> None:
    items = [ev("a", code="timeout", count=5), ev("b", code="timeout", count=1),
             ev("c", code="auth", count=9)]
    selector = Selector.model_validate({"query": "q", "where": {"data.code": "timeout",
                                                                "data.count": {"gte": 3}}})
    picked, good = select(selector, {"q": ok(*items)})
    assert [e.ref for e in picked] == ["a"]
    assert good is True


def test_select_missing_or_failed_query() -> None:
    selector = Selector(query="q")
    assert select(selector, {}) == ([], False)
    picked, good = select(selector, {"q": failed(ev("a"))})
    assert [e.ref for e in picked] == ["a"] and good is False


# --- exists ----------------------------------------------------------------------------------

def test_exists_min_count() -> None:
    signal = sig(id="dup", kind="exists", min_count=2,
                 select={"query": "q", "where": {"data.status": "succeeded"}})
    one = run(signal, q=ok(ev("a", status="succeeded"), ev("b", status="failed")))
    assert (one.holds, one.value, one.refs, one.unknown) == (False, 1, (), False)
    two = run(signal, q=ok(ev("a", status="succeeded"), ev("b", status="succeeded")))
    assert (two.holds, two.value, two.refs) == (True, 2, refs("a", "b"))


def test_exists_min_count_must_be_positive() -> None:
    with pytest.raises(ValidationError):
        sig(id="x", kind="exists", min_count=0, select={"query": "q"})


def test_exists_refs_are_deduplicated_and_limited_by_cite_limit() -> None:
    signal = sig(id="bugs", kind="exists", cite_limit=2, select={"query": "q"})
    result = run(signal, q=ok(ev("a"), ev("a"), ev("b"), ev("c")))
    assert result.holds and result.value == 4
    assert result.refs == refs("a", "b")
    unlimited = run(sig(id="bugs", kind="exists", select={"query": "q"}),
                    q=ok(ev("a"), ev("a"), ev("b"), ev("c")))
    assert unlimited.refs == refs("a", "b", "c")


def test_cite_limit_must_be_positive() -> None:
    with pytest.raises(ValidationError):
        sig(id="x", kind="exists", cite_limit=0, select={"query": "q"})


# --- compare ---------------------------------------------------------------------------------

NUMBERS = [ev("a", n=4), ev("b", n="10"), ev("c", n=1.5), ev("d", n="n/a"), ev("e")]


@pytest.mark.parametrize(("agg", "expected"), [
    ("max", 10.0), ("min", 1.5), ("sum", 15.5), ("count", 5), ("first", 4),
])
def test_compare_aggregates(agg: str, expected: Any) -> None:
    signal = sig(id="s", kind="compare", select={"query": "q"}, field="data.n", agg=agg,
                 op=">=", value=0)
    result = run(signal, q=ok(*NUMBERS))
    assert result.holds
    assert result.value == expected
    assert result.refs == refs("a", "b", "c", "d", "e")


@pytest.mark.parametrize(("op", "value", "expected"), [
    (">", 9, True), (">", 10, False), (">=", 10, True), (">=", 10.5, False),
    ("<", 11, True), ("<", 10, False), ("<=", 10, True), ("<=", 9.9, False),
    ("==", 10, True), ("==", "10", True), ("==", 9, False),
    ("!=", 9, True), ("!=", 10, False),
])
def test_compare_ops(op: str, value: Any, expected: bool) -> None:
    signal = sig(id="s", kind="compare", select={"query": "q"}, field="data.n", agg="max",
                 op=op, value=value)
    result = run(signal, q=ok(*NUMBERS))
    assert result.holds is expected
    assert result.value == 10.0
    assert result.refs == (refs("a", "b", "c", "d", "e") if expected else ())


def test_compare_strings_with_first() -> None:
    items = [ev("sub", status="past_due"), ev("sub2", status="active")]
    eq = sig(id="s", kind="compare", select={"query": "q"}, field="data.status", agg="first",
             op="==", value="past_due")
    assert run(eq, q=ok(*items)).holds
    ne = sig(id="s", kind="compare", select={"query": "q"}, field="data.status", agg="first",
             op="!=", value="past_due")
    assert not run(ne, q=ok(*items)).holds
    # an ordering between a string and a number cannot hold (and must not raise)
    gt = sig(id="s", kind="compare", select={"query": "q"}, field="data.status", agg="first",
             op=">", value=3)
    result = run(gt, q=ok(*items))
    assert result.holds is False and result.refs == ()


def test_compare_with_nothing_selected() -> None:
    items = [ev("a", code="x", n=9)]
    for agg in ("max", "min", "sum", "first"):
        signal = sig(id="s", kind="compare", select={"query": "q", "where": {"data.code": "y"}},
                     field="data.n", agg=agg, op="<=", value=100)
        result = run(signal, q=ok(*items))
        assert (result.holds, result.value) == (False, None), agg
    count = sig(id="s", kind="compare", select={"query": "q", "where": {"data.code": "y"}},
                field="data.n", agg="count", op="<=", value=1)
    result = run(count, q=ok(*items))
    assert (result.holds, result.value) == (True, 0)


def test_compare_numeric_aggregate_of_non_numbers_is_none() -> None:
    signal = sig(id="s", kind="compare", select={"query": "q"}, field="data.n", agg="sum",
                 op=">=", value=0)
    result = run(signal, q=ok(ev("a", n="x"), ev("b")))
    assert (result.holds, result.value) == (False, None)


def test_compare_requires_its_fields() -> None:
    with pytest.raises(ValidationError, match="field, op"):
        sig(id="s", kind="compare", select={"query": "q"}, value=1)


# --- after -----------------------------------------------------------------------------------

def iso(minutes: float, z: bool = True) -> str:
    text = (T0 + timedelta(minutes=minutes)).isoformat()
    return text.replace("+00:00", "Z") if z else text


def after(**extra: Any) -> Signal:
    spec: dict[str, Any] = {
        "id": "began_after", "kind": "after", "of": {"query": "q"}, "field": "data.first_seen",
        "reference": {"query": "r"}, "reference_field": "data.at", "minutes": 60,
    }
    spec.update(extra)
    return sig(**spec)


@pytest.mark.parametrize(("gap", "expected"), [
    (0, True), (1, True), (59.9, True), (60, True), (60.5, False), (-0.5, False), (-30, False),
])
def test_after_within_minutes(gap: float, expected: bool) -> None:
    result = run(after(), q=ok(ev("err", first_seen=iso(gap))),
                 r=ok(ev("deploy", source="github", at=iso(0))))
    assert result.holds is expected
    if expected:
        assert result.value == round(gap, 1)
        assert result.refs == (EvidenceRef(source="clickhouse", ref="err"),
                               EvidenceRef(source="github", ref="deploy"))
    else:
        assert result.refs == ()


@pytest.mark.parametrize(("gap", "expected"), [(-44, True), (-45, True), (-46, False),
                                               (120, False)])
def test_after_slack_lets_the_reference_lag(gap: float, expected: bool) -> None:
    # the status page opened the incident `-gap` minutes after the errors began
    signal = after(slack_minutes=45, minutes=90)
    result = run(signal, q=ok(ev("err", first_seen=iso(gap))),
                 r=ok(ev("inc", source="statuspage", at=iso(0))))
    assert result.holds is expected


def test_after_mixed_timestamp_formats() -> None:
    of = [ev("epoch", first_seen=(T0 + timedelta(minutes=10)).timestamp()),
          ev("offset", first_seen="2026-09-14T12:20:00+02:00"),
          ev("naive", first_seen="2026-09-14T10:30:00"),
          ev("garbage", first_seen="soon"), ev("none")]
    result = run(after(), q=ok(*of), r=ok(ev("deploy", source="github", at="2026-09-14T10:00:00Z")))
    assert result.holds
    assert result.value == 10.0  # the smallest gap
    assert set(result.refs) == {*refs("epoch", "offset", "naive"),
                                EvidenceRef(source="github", ref="deploy")}


def test_after_picks_any_reference_that_fits() -> None:
    reference = [ev("old", source="github", at=iso(-500)), ev("new", source="github", at=iso(-5))]
    result = run(after(), q=ok(ev("err", first_seen=iso(0))), r=ok(*reference))
    assert result.holds and result.value == 5.0
    assert EvidenceRef(source="github", ref="old") not in result.refs


@pytest.mark.parametrize(("providers", "provider", "expected"), [
    ({"openai": 12, "anthropic": 3}, "openai", True),
    ({"openai": 12}, "anthropic", False),
    (["openai", "mistral"], "mistral", True),
    ("openai", "openai", True),
    (None, "openai", False),
    ({"openai": 1}, None, False),
])
def test_after_join_requires_an_overlap(providers: Any, provider: Any, expected: bool) -> None:
    signal = after(join={"of": "data.providers", "reference": "data.provider"})
    result = run(signal, q=ok(ev("err", first_seen=iso(5), providers=providers)),
                 r=ok(ev("inc", source="statuspage", at=iso(0), provider=provider)))
    assert result.holds is expected


def test_after_join_needs_both_sides() -> None:
    with pytest.raises(ValidationError, match="join"):
        after(join={"of": "data.providers"})


def test_after_cite_limit() -> None:
    of = [ev(f"err{i}", first_seen=iso(i)) for i in range(5)]
    result = run(after(cite_limit=3), q=ok(*of), r=ok(ev("deploy", at=iso(0))))
    assert result.holds and len(result.refs) == 3


def test_after_unknown_when_a_side_failed_or_is_missing() -> None:
    items = {"q": ok(ev("err", first_seen=iso(5)))}
    missing = run(after(), **items)
    assert (missing.holds, missing.unknown) == (False, True)
    broken = run(after(), **items, r=failed())
    assert (broken.holds, broken.unknown) == (False, True)
    fine = run(after(), **items, r=ok())
    assert (fine.holds, fine.unknown) == (False, False)


def test_after_requires_its_fields() -> None:
    with pytest.raises(ValidationError, match="minutes"):
        sig(id="a", kind="after", of={"query": "q"}, field="x", reference={"query": "r"},
            reference_field="y")
    with pytest.raises(ValidationError):
        after(minutes=0)
    with pytest.raises(ValidationError):
        after(slack_minutes=-1)


# --- unknown ---------------------------------------------------------------------------------

def test_exists_and_compare_unknown_when_the_query_failed_or_is_missing() -> None:
    exists = sig(id="e", kind="exists", select={"query": "q"})
    assert run(exists).unknown is True
    assert run(exists, q=failed()).unknown is True
    assert run(exists, q=ok()).unknown is False
    compare = sig(id="c", kind="compare", select={"query": "q"}, field="data.n", op=">",
                  value=1)
    assert run(compare).unknown is True
    assert run(compare, q=failed()).unknown is True
    assert run(compare, q=ok(ev("a", n=0))).unknown is False


# --- all / any / none ------------------------------------------------------------------------

COMBO_SIGNALS: list[dict[str, Any]] = [
    {"id": "yes", "kind": "exists", "select": {"query": "q", "where": {"data.k": "yes"}}},
    {"id": "yes2", "kind": "exists", "select": {"query": "q", "where": {"data.k": "yes2"}}},
    {"id": "no", "kind": "exists", "select": {"query": "q", "where": {"data.k": "no"}}},
    {"id": "all_yes", "kind": "all", "signals": ["yes", "yes2"]},
    {"id": "all_mixed", "kind": "all", "signals": ["yes", "no"]},
    {"id": "any_mixed", "kind": "any", "signals": ["no", "yes"]},
    {"id": "any_no", "kind": "any", "signals": ["no"]},
    {"id": "none_no", "kind": "none", "signals": ["no"]},
    {"id": "none_mixed", "kind": "none", "signals": ["no", "yes"]},
    {"id": "nested", "kind": "all", "signals": ["any_mixed", "none_no"]},
]


def test_combinations() -> None:
    evaluation = evaluate(playbook(COMBO_SIGNALS), {"q": ok(ev("a", k="yes"), ev("b", k="yes2"))})
    held = {k: v.holds for k, v in evaluation.results.items()}
    assert held == {"yes": True, "yes2": True, "no": False, "all_yes": True, "all_mixed": False,
                    "any_mixed": True, "any_no": False, "none_no": True, "none_mixed": False,
                    "nested": True}
    assert evaluation.results["all_yes"].refs == refs("a", "b")
    assert evaluation.results["all_yes"].value == 2
    assert evaluation.results["any_mixed"].refs == refs("a")
    assert evaluation.results["none_no"].refs == ()
    assert evaluation.results["nested"].refs == refs("a")
    assert not any(r.unknown for r in evaluation.results.values())
    assert evaluation.holds("nested") and not evaluation.holds("no")


def test_combination_defined_before_its_parts() -> None:
    signals = [{"id": "first", "kind": "any", "signals": ["later"]},
               {"id": "later", "kind": "exists", "select": {"query": "q"}}]
    evaluation = evaluate(playbook(signals), {"q": ok(ev("a"))})
    assert evaluation.holds("first") and evaluation.results["first"].refs == refs("a")


def test_combinations_unknown_when_a_part_failed_and_it_does_not_hold() -> None:
    signals = [{"id": "down", "kind": "exists", "select": {"query": "r"}},
               {"id": "up", "kind": "exists", "select": {"query": "q"}},
               {"id": "all_", "kind": "all", "signals": ["up", "down"]},
               {"id": "any_", "kind": "any", "signals": ["down"]},
               {"id": "any_held", "kind": "any", "signals": ["up", "down"]}]
    evaluation = evaluate(playbook(signals), {"q": ok(ev("a")), "r": failed()})
    results = evaluation.results
    assert results["down"].unknown and not results["up"].unknown
    assert (results["all_"].holds, results["all_"].unknown) == (False, True)
    assert (results["any_"].holds, results["any_"].unknown) == (False, True)
    # an `any` that holds is settled even though one part is unknown
    assert (results["any_held"].holds, results["any_held"].unknown) == (True, False)


def test_none_over_a_failed_source_is_unknown() -> None:
    signals = [{"id": "down", "kind": "exists", "select": {"query": "r"}},
               {"id": "no_down", "kind": "none", "signals": ["down"]}]
    result = evaluate(playbook(signals), {"r": failed()}).results["no_down"]
    assert result.unknown is True


def test_combination_needs_signals() -> None:
    with pytest.raises(ValidationError, match="signals"):
        sig(id="c", kind="all")


def test_cycles_between_combinations_do_not_hang() -> None:
    signals = [{"id": "a", "kind": "all", "signals": ["b"]},
               {"id": "b", "kind": "all", "signals": ["a"]},
               {"id": "self_", "kind": "any", "signals": ["self_"]},
               {"id": "downstream", "kind": "any", "signals": ["a", "fine"]},
               {"id": "fine", "kind": "exists", "select": {"query": "q"}}]
    evaluation = evaluate(playbook(signals), {"q": ok(ev("x"))})
    assert evaluation.holds("fine") and not evaluation.results["fine"].unknown
    for cyclic in ("a", "b", "self_", "downstream"):
        result = evaluation.results[cyclic]
        assert (result.holds, result.unknown) == (False, True), cyclic


def test_unknown_signal_reference_is_rejected_by_the_schema() -> None:
    with pytest.raises(ValidationError, match="unknown signal 'ghost'"):
        playbook([{"id": "a", "kind": "any", "signals": ["ghost"]}])


def test_after_skips_items_with_unreadable_epoch() -> None:
    result = run(after(), q=ok(ev("err", first_seen=1_757_844_000_000),
                               ev("err2", first_seen=iso(5))),
                 r=ok(ev("deploy", at=iso(0))))
    assert result.holds and result.refs == refs("err2", "deploy")
