"""How long redaction takes per ticket, and how well it scores on the labeled corpus.

Tickets of 1,500 characters are stitched from the corpus's tickets, log lines and evidence
(each run gets a different ticket, and the phone-number memo is cleared before each); every
run redacts one ticket into a fresh investigation. The analyzer is built and warmed up first.

Run:  .venv/bin/python -m benchmarks.redaction [--runs N] [--out FILE]

One JSON object goes to stdout (and to --out): median and p95 milliseconds per ticket
without NER, with NER when a spaCy NER model is installed, and the corpus scores.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from evals.redaction.score import load, score
from governance.redaction import Redactor
from governance.redaction.recognizers import clear_caches
from governance.redaction.redactor import installed_ner_model

TICKET_CHARS = 1_500


def tickets(count: int, seed: int = 7) -> list[str]:
    """Return `count` different 1,500-character texts stitched from corpus snippets."""
    snippets = [row["text"] for row in load()]
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < count:
        parts: list[str] = []
        while sum(len(p) + 2 for p in parts) < TICKET_CHARS:
            parts.append(rng.choice(snippets))
        out.append("\n\n".join(parts)[:TICKET_CHARS])
    return out


def time_redaction(redactor: Redactor, texts: list[str]) -> dict[str, Any]:
    """Redact each text once; return the latency distribution in milliseconds."""
    for text in texts[:5]:  # build the analyzer and warm libphonenumber's metadata
        redactor.redact(text, investigation_id="warm-up")
    samples: list[float] = []
    for number, text in enumerate(texts):
        clear_caches()  # stitched tickets repeat numbers; time every lookup cold
        start = time.perf_counter()
        redactor.redact(text, investigation_id=f"bench-{number}")
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {"runs": len(samples), "chars": TICKET_CHARS,
            "median_ms": round(statistics.median(samples), 3),
            "p95_ms": round(samples[int(0.95 * (len(samples) - 1))], 3),
            "max_ms": round(samples[-1], 3)}


def _scores(redactor: Redactor) -> dict[str, Any]:
    result = score(redactor=redactor)
    return {"snippets": result["snippets"], "by_type": result["by_type"],
            "overall": result["overall"],
            "by_split": {k: v["overall"] for k, v in result["by_split"].items()},
            "failures": result["failures"][:20]}


def main(argv: list[str] | None = None) -> None:
    """Time redaction with and without NER and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    texts = tickets(max(args.runs, 200))
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "presidio_analyzer": version("presidio-analyzer"),
        "spacy": version("spacy"),
        "target": "median <= 15 ms per 1,500-character ticket without NER",
    }
    without = Redactor(use_ner=False)
    report["without_ner"] = time_redaction(without, texts)
    report["scores_without_ner"] = _scores(without)
    model = installed_ner_model("en")
    if model is None:
        report["with_ner"] = {"skipped": "no spaCy NER model is installed (e.g. en_core_web_sm)"}
    else:
        with_ner = Redactor(use_ner=True)
        report["with_ner"] = {"model": model, **time_redaction(with_ner, texts)}
        report["scores_with_ner"] = _scores(with_ner)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(f"median {report['without_ner']['median_ms']} ms without NER", file=sys.stderr)


if __name__ == "__main__":
    main()
