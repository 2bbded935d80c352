"""Score the redactor on the labeled corpus: recall, precision and F1 per entity type.

    python -m evals.redaction.score            # JSON on stdout

A gold span counts as found when a predicted span of the same type overlaps it; a password in
a URL and any other secret are one family (both become <SECRET_n>).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from governance.redaction import Finding, Redactor

CORPUS = Path(__file__).with_name("corpus.jsonl")
_FAMILY = {"URL_PASSWORD": "SECRET"}


def load(path: Path = CORPUS) -> list[dict[str, Any]]:
    """Read the corpus, checking every span lies inside its text."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    for row in rows:
        for entity in row["entities"]:
            assert 0 <= entity["start"] < entity["end"] <= len(row["text"]), row["id"]
    return rows


def _same(gold: str, predicted: str) -> bool:
    return _FAMILY.get(gold, gold) == _FAMILY.get(predicted, predicted)


def _overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start < b_end and b_start < a_end


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 1.0


def _metrics(tp_gold: int, gold: int, tp_pred: int, predicted: int) -> dict[str, Any]:
    recall, precision = _ratio(tp_gold, gold), _ratio(tp_pred, predicted)
    f1 = round(2 * recall * precision / (recall + precision), 4) if recall + precision else 0.0
    return {"support": gold, "predicted": predicted, "recall": recall,
            "precision": precision, "f1": f1}


def score(rows: Iterable[dict[str, Any]] | None = None,
          redactor: Redactor | None = None) -> dict[str, Any]:
    """Run the redactor over the corpus: figures per type, overall, and per split."""
    rows = list(rows if rows is not None else load())
    redactor = redactor or Redactor()
    result = _score(rows, redactor)
    splits = sorted({row.get("split", "dev") for row in rows})
    result["by_split"] = {split: {key: value for key, value in _score(
        [row for row in rows if row.get("split", "dev") == split], redactor).items()
        if key in ("snippets", "by_type", "overall")} for split in splits}
    return result


def _score(rows: list[dict[str, Any]], redactor: Redactor) -> dict[str, Any]:
    gold, found, predicted, correct = Counter[str](), Counter[str](), Counter[str](), Counter[str]()
    failures: list[dict[str, Any]] = []
    for row in rows:
        text = row["text"]
        spans: list[Finding] = redactor.findings(text)
        for entity in row["entities"]:
            gold[entity["type"]] += 1
            if any(_same(entity["type"], p.entity_type)
                   and _overlaps(entity["start"], entity["end"], p.start, p.end) for p in spans):
                found[entity["type"]] += 1
            else:
                failures.append({"id": row["id"], "error": "missed", "type": entity["type"],
                                 "text": text[entity["start"]:entity["end"]]})
        for p in spans:
            predicted[p.entity_type] += 1
            if any(_same(e["type"], p.entity_type)
                   and _overlaps(e["start"], e["end"], p.start, p.end) for e in row["entities"]):
                correct[p.entity_type] += 1
            else:
                failures.append({"id": row["id"], "error": "spurious", "type": p.entity_type,
                                 "text": text[p.start:p.end]})
    types = sorted(set(gold) | set(predicted))
    return {
        "snippets": len(rows),
        "ner_models": redactor.ner_models,
        "by_type": {t: _metrics(found[t], gold[t], correct[t], predicted[t]) for t in types},
        "overall": _metrics(sum(found.values()), sum(gold.values()),
                            sum(correct.values()), sum(predicted.values())),
        "failures": failures,
    }


def main() -> None:
    """Print the scores as JSON."""
    json.dump(score(), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
