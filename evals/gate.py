"""Gates on replay results: the promotion gate of a playbook version, and the CI gate.

`promote` replays the committed cases twice, with the store's active set and with the
candidate version pinned, scores both and refuses the candidate (with reasons) when it
is worse on root-cause accuracy, evidence recall or a safety figure (safety violations,
high-severity false positives). Otherwise it makes the candidate active.

`ci_gate` lists what must fail a build: any safety violation or high-severity false
positive in a results file.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import SleuthError
from core.settings import Settings
from evals.replay import Mode, ReplayOptions, replay_cases
from evals.score import CaseExpectation, Scorecard, load_expectations, score
from playbooks.store import PlaybookStore
from sandbox.cases import discover

# (figure, label, higher is better)
GATED: list[tuple[str, str, bool]] = [
    ("root_cause_accuracy", "root-cause accuracy", True),
    ("evidence_recall", "evidence recall", True),
    ("safety_violations", "safety violations", False),
    ("high_severity_false_positives", "high-severity false positives", False),
]


@dataclass
class GateResult:
    """The outcome of a promotion: accepted or refused, with reasons and both scorecards."""

    playbook_id: str
    version: str
    accepted: bool
    reasons: list[str] = field(default_factory=list)
    previous: str | None = None
    baseline: Scorecard | None = None
    candidate: Scorecard | None = None
    baseline_lines: list[dict[str, Any]] = field(default_factory=list)
    candidate_lines: list[dict[str, Any]] = field(default_factory=list)

    def figures(self) -> dict[str, tuple[Any, Any]]:
        """Return {figure: (baseline, candidate)} for the gated figures."""
        if self.baseline is None or self.candidate is None:
            return {}
        return {key: (self.baseline.overall[key], self.candidate.overall[key])
                for key, _, _ in GATED}


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def compare_gated(baseline: Scorecard, candidate: Scorecard) -> list[str]:
    """Return why the candidate is worse than the baseline on a gated figure (empty: not)."""
    reasons = []
    for key, label, higher_better in GATED:
        old, new = baseline.overall[key], candidate.overall[key]
        if old is None or new is None:
            continue
        if (new < old) if higher_better else (new > old):
            reasons.append(f"{label} is worse: {_fmt(old)} with the active set, "
                           f"{_fmt(new)} with the candidate")
    return reasons


def promote(store: PlaybookStore, playbook_id: str, version: str, cases_dir: Path, *,
            mode: Mode = "rules", workers: int = 4, processes: int = 1,
            settings: Settings | None = None, apply: bool = True) -> GateResult:
    """Replay the cases with the active set and with `playbook_id@version`; promote if no worse.

    Refused (nothing changed) when the candidate does not load, or is worse on a gated
    figure. With `apply` False the gate only reports (a dry run).
    """
    result = GateResult(playbook_id, version, accepted=False)
    try:
        result.previous = store.active_versions().get(playbook_id)
        store.get(playbook_id, version)
    except SleuthError as exc:
        result.reasons.append(f"{playbook_id}@{version} cannot be used: {exc.message}")
        return result
    folders = discover(cases_dir)
    if not folders:
        result.reasons.append(f"no cases under {cases_dir}")
        return result
    cases = load_expectations(cases_dir)

    def options(pins: dict[str, str]) -> ReplayOptions:
        return ReplayOptions(mode=mode, workers=workers, pins=pins, playbooks_dir=store.root,
                             settings=settings, processes=processes)

    async def both() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        old = await replay_cases(folders, options({}))
        new = await replay_cases(folders, options({playbook_id: version}))
        return old, new

    result.baseline_lines, result.candidate_lines = asyncio.run(both())
    result.baseline = score(result.baseline_lines, cases)
    result.candidate = score(result.candidate_lines, cases)
    result.reasons = compare_gated(result.baseline, result.candidate)
    if result.reasons:
        return result
    result.accepted = True
    if apply:
        store.set_active(playbook_id, version)
    return result


def ci_gate(results: list[dict[str, Any]] | Scorecard,
            cases: dict[str, CaseExpectation] | None = None) -> list[str]:
    """Return the problems that must fail CI: safety violations and high-severity false
    positives, one string each (empty: the gate passes)."""
    if isinstance(results, Scorecard):
        card = results
    else:
        if cases is None:
            raise ValueError("give the cases to score the results against")
        card = score(results, cases)
    problems = []
    for c in card.cases:
        problems += [f"{c.case_id}: safety violation: {v}" for v in c.safety_violations]
        if c.high_severity_fp:
            problems.append(f"{c.case_id}: high-severity false positive (predicted high, "
                            f"expected {c.expected_severity})")
    return problems
