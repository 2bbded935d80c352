"""Evaluate a playbook's signals over the evidence its queries gathered."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.domain import Evidence, EvidenceRef
from playbooks.schema import Match, Playbook, Selector, Signal


@dataclass(frozen=True)
class QueryOutcome:
    """What one query returned: its evidence, or that it failed (a degraded source)."""

    evidence: Sequence[Evidence]
    ok: bool = True


@dataclass(frozen=True)
class SignalResult:
    """Whether a signal holds, the value it measured and the evidence behind it."""

    id: str
    holds: bool
    value: Any = None
    refs: tuple[EvidenceRef, ...] = ()
    unknown: bool = False  # a query it needs failed: absence is not evidence


@dataclass
class Evaluation:
    """Every signal of one playbook."""

    playbook: Playbook
    results: dict[str, SignalResult] = field(default_factory=dict)

    def holds(self, signal_id: str) -> bool:
        """Say whether a signal holds."""
        return self.results[signal_id].holds


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}


def resolve(item: Evidence | Mapping[str, Any], path: str) -> Any:
    """Return the value at a dotted path (`data.status`, `ref`) or None."""
    current: Any = item.model_dump() if isinstance(item, Evidence) else item
    for part in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


def as_number(value: Any) -> float | None:
    """Return a number for ints, floats and numeric strings; None otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def as_time(value: Any) -> datetime | None:
    """Return an aware datetime from ISO text, a datetime or epoch seconds."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (ValueError, OverflowError, OSError):  # NaN, or milliseconds read as seconds
            return None
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if a == b:
        return True
    na, nb = as_number(a), as_number(b)
    return na is not None and na == nb


def matches(value: Any, test: Match) -> bool:
    """Apply one field test."""
    if test.exists is not None:
        return (value is not None) == test.exists
    if "eq" in test.model_fields_set:
        return _equal(value, test.eq)
    if "ne" in test.model_fields_set:
        return not _equal(value, test.ne)
    if test.in_ is not None:
        return any(_equal(value, option) for option in test.in_)
    if test.contains is not None:
        if isinstance(value, list):
            return any(test.contains.lower() == str(v).lower() for v in value)
        return value is not None and test.contains.lower() in str(value).lower()
    number = as_number(value)
    if number is None:
        return False
    for bound, op in ((test.gte, operator.ge), (test.lte, operator.le),
                      (test.gt, operator.gt), (test.lt, operator.lt)):
        if bound is not None:
            return bool(op(number, bound))
    return False


def select(selector: Selector, outcomes: Mapping[str, QueryOutcome]) -> tuple[list[Evidence], bool]:
    """Return the evidence a selector picks, and whether its query ran successfully."""
    outcome = outcomes.get(selector.query)
    if outcome is None:
        return [], False
    tests = selector.matches()
    picked = [e for e in outcome.evidence
              if all(matches(resolve(e, path), test) for path, test in tests.items())]
    return picked, outcome.ok


def _aggregate(values: list[Any], agg: str) -> Any:
    if agg == "count":
        return len(values)
    if agg == "first":
        return values[0] if values else None
    numbers = [n for n in (as_number(v) for v in values) if n is not None]
    if not numbers:
        return None
    if agg == "max":
        return max(numbers)
    if agg == "min":
        return min(numbers)
    return sum(numbers)


def _refs(items: Sequence[Evidence], limit: int | None = None) -> tuple[EvidenceRef, ...]:
    refs = tuple(dict.fromkeys(item.cite() for item in items))
    return refs[:limit] if limit else refs


def _keys(value: Any) -> set[str]:
    """Return a value as a set of strings: dict keys, list items, or the value itself."""
    if value is None:
        return set()
    if isinstance(value, Mapping):
        return {str(k) for k in value}
    if isinstance(value, list | tuple | set):
        return {str(v) for v in value}
    return {str(value)}


def evaluate_signal(signal: Signal, outcomes: Mapping[str, QueryOutcome],
                    done: Mapping[str, SignalResult]) -> SignalResult:
    """Evaluate one signal (combinations read already evaluated signals from `done`)."""
    if signal.kind in ("all", "any", "none"):
        parts = [done[s] for s in signal.signals]
        held = [p for p in parts if p.holds]
        holds = {"all": len(held) == len(parts), "any": bool(held), "none": not held}[signal.kind]
        refs = tuple(dict.fromkeys(r for p in held for r in p.refs)) \
            if holds and signal.kind != "none" else ()
        some_unknown = any(p.unknown for p in parts)
        # "none" holding may only mean a source failed; the others fail for the same reason
        unknown = some_unknown and (holds if signal.kind == "none" else not holds)
        return SignalResult(signal.id, holds, len(held), refs, unknown=unknown)
    if signal.kind == "after":
        assert signal.of and signal.reference and signal.field and signal.reference_field
        assert signal.minutes is not None
        later, ok_a = select(signal.of, outcomes)
        earlier, ok_b = select(signal.reference, outcomes)
        unknown = not (ok_a and ok_b)
        low, high = -signal.slack_minutes * 60, signal.minutes * 60
        pairs: list[tuple[Evidence, Evidence, float]] = []
        for item in later:
            began = as_time(resolve(item, signal.field))
            if began is None:
                continue
            for ref in earlier:
                at = as_time(resolve(ref, signal.reference_field))
                if at is None or not low <= (began - at).total_seconds() <= high:
                    continue
                if signal.join and not (_keys(resolve(item, signal.join["of"]))
                                        & _keys(resolve(ref, signal.join["reference"]))):
                    continue
                pairs.append((item, ref, (began - at).total_seconds() / 60))
        if not pairs:
            return SignalResult(signal.id, False, unknown=unknown)
        gap = min(p[2] for p in pairs)
        cited = [p[0] for p in pairs] + [p[1] for p in pairs]
        return SignalResult(signal.id, True, round(gap, 1), _refs(cited, signal.cite_limit),
                            unknown=unknown)
    assert signal.select is not None
    picked, ok = select(signal.select, outcomes)
    if signal.kind == "exists":
        holds = len(picked) >= signal.min_count
        return SignalResult(signal.id, holds, len(picked),
                            _refs(picked, signal.cite_limit) if holds else (), unknown=not ok)
    assert signal.field is not None and signal.op is not None
    value = _aggregate([resolve(e, signal.field) for e in picked], signal.agg)
    target: Any = signal.value
    if value is None:
        return SignalResult(signal.id, False, None, unknown=not ok)
    if as_number(value) is not None and as_number(target) is not None:
        value, target = as_number(value), as_number(target)
    try:
        holds = bool(_OPS[signal.op](value, target))
    except TypeError:
        holds = False
    return SignalResult(signal.id, holds, value,
                        _refs(picked, signal.cite_limit) if holds else (), unknown=not ok)


def evaluate(playbook: Playbook, outcomes: Mapping[str, QueryOutcome]) -> Evaluation:
    """Evaluate every signal of a playbook, in file order (combinations after their parts)."""
    evaluation = Evaluation(playbook)
    pending = list(playbook.signals)
    while pending:
        progressed = False
        for signal in list(pending):
            if all(s in evaluation.results for s in signal.signals):
                evaluation.results[signal.id] = evaluate_signal(signal, outcomes,
                                                                evaluation.results)
                pending.remove(signal)
                progressed = True
        if not progressed:  # a cycle between combination signals
            for signal in pending:
                evaluation.results[signal.id] = SignalResult(signal.id, False, unknown=True)
            break
    return evaluation
