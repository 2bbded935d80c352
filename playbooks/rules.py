"""The rule tier: playbook signals and hypotheses turned into a diagnosis.

It serves the gateway's `rules` tier for the `diagnose` task, so investigations
work with no model reachable. Scoring: a hypothesis whose required signals
hold and whose excluding signals do not scores `base + Σ weights of holding
signals`; the best score wins and becomes the confidence. Signals that could
not be evaluated because their source failed lower the confidence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from core.domain import Diagnosis, EvidenceRef, ProposedAction, RootCause, Severity
from core.llm.types import ModelRequest
from playbooks.schema import Hypothesis, Playbook
from playbooks.signals import Evaluation, QueryOutcome, evaluate, resolve

MIN_SCORE = 0.35
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_][a-z0-9_.]*)\s*\}\}")


@dataclass
class RuleInput:
    """What the agent hands the rule tier in `ModelRequest.context['rules']`."""

    playbooks: Sequence[Playbook]
    outcomes: Mapping[str, Mapping[str, QueryOutcome]]  # playbook id → query id → outcome
    variables: dict[str, Any] = field(default_factory=dict)  # for reply templates


@dataclass(frozen=True)
class Candidate:
    """A hypothesis that passed its requirements, with its score."""

    score: float
    playbook: Playbook
    hypothesis: Hypothesis
    evaluation: Evaluation
    uncertain: bool


def render(template: str, variables: Mapping[str, Any]) -> str:
    """Fill `{{ path }}` placeholders from `variables` (missing values become empty)."""

    def fill(match: re.Match[str]) -> str:
        value = resolve(variables, match.group(1))
        return "" if value is None else str(value)

    return _PLACEHOLDER.sub(fill, template).strip()


def unwrap(text: str) -> str:
    """Join the hard-wrapped lines of each paragraph (YAML authors wrap at ~95 columns)."""
    lines = text.split("\n")
    out: list[str] = []
    for line in lines:
        if out and out[-1] and line.strip() and len(out[-1]) >= 60:
            out[-1] = f"{out[-1].rstrip()} {line.strip()}"
        else:
            out.append(line.rstrip())
    return "\n".join(out)


def candidates(rule_input: RuleInput) -> list[Candidate]:
    """Score every hypothesis of every playbook; best first."""
    found: list[Candidate] = []
    for playbook in rule_input.playbooks:
        evaluation = evaluate(playbook, rule_input.outcomes.get(playbook.id, {}))
        for hyp in playbook.hypotheses:
            if not all(evaluation.holds(s) for s in hyp.require):
                continue
            if any(evaluation.holds(s) for s in hyp.exclude):
                continue
            score = hyp.base + sum(w for s, w in hyp.weights.items() if evaluation.holds(s))
            involved = (*hyp.require, *hyp.exclude, *hyp.weights)
            uncertain = any(evaluation.results[s].unknown for s in involved)
            found.append(Candidate(score, playbook, hyp, evaluation, uncertain))
    found.sort(key=lambda c: c.score, reverse=True)
    return found


MAX_CITED = 50  # Diagnosis.cited holds at most this many


def _cited(candidate: Candidate) -> list[EvidenceRef]:
    ids = (*candidate.hypothesis.require, *candidate.hypothesis.cite)
    results = candidate.evaluation.results
    refs = [r for s in dict.fromkeys(ids) if results[s].holds for r in results[s].refs]
    return list(dict.fromkeys(refs))[:MAX_CITED]


def diagnose(rule_input: RuleInput) -> Diagnosis:
    """Return the rule tier's diagnosis for the gathered evidence."""
    ranked = candidates(rule_input)
    best = ranked[0] if ranked else None
    if best is None or best.score < MIN_SCORE:
        return Diagnosis(
            root_cause=RootCause.NO_FAULT_FOUND, severity=Severity.LOW, confidence=0.2,
            summary="No playbook hypothesis is supported by the evidence; a person should "
                    "look at this ticket.",
            cited=[], reply_draft="", escalate=True,
            actions=[ProposedAction(type="add_internal_note",
                                    reason="record what was checked")],
        )
    hyp = best.hypothesis
    confidence = min(0.97, max(0.05, best.score))
    if best.uncertain:
        confidence *= 0.8
    runner_up = next((c for c in ranked[1:] if c.hypothesis.root_cause != hyp.root_cause), None)
    if runner_up is not None and best.score - runner_up.score < 0.1:
        confidence *= 0.85  # a close second opinion: say so through confidence
    holding = [best.evaluation.results[s] for s in (*hyp.require, *hyp.weights)
               if best.evaluation.results[s].holds]
    described = {s.id: s.description for s in best.playbook.signals}
    facts = "; ".join(dict.fromkeys(described[r.id] or r.id for r in holding))
    variables = {**rule_input.variables,
                 "signals": {k: {"value": v.value, "refs": [r.ref for r in v.refs]}
                             for k, v in best.evaluation.results.items()}}
    return Diagnosis(
        root_cause=hyp.root_cause, severity=hyp.severity, confidence=round(confidence, 3),
        summary=f"{best.playbook.title}: {facts}." if facts else best.playbook.title,
        cited=_cited(best),
        reply_draft=unwrap(render(best.playbook.replies[hyp.reply], variables)),
        actions=[ProposedAction(type=a.type.value, reason=a.reason,
                                params={k: render(v, variables) if isinstance(v, str) else v
                                        for k, v in a.params.items()})
                 for a in hyp.actions],
        escalate=hyp.escalate,
    )


class PlaybookRuleEngine:
    """Serves the gateway's rules tier from the playbooks in the request context."""

    name = "playbooks"

    def answer(self, request: ModelRequest, schema: type[BaseModel]) -> dict[str, Any] | None:
        """Diagnose from rules when the request carries rule input; else no answer."""
        rule_input = request.context.get("rules")
        if request.task != "diagnose" or not isinstance(rule_input, RuleInput):
            return None
        return diagnose(rule_input).model_dump(mode="json")
