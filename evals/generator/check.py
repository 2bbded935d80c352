"""Replay generated cases through the rule tier and compare with their expected blocks.

Run: ``.venv/bin/python -m evals.generator.check [--prefix gen-]``

Prints one line a case (root cause, severity, missing evidence, missing or executed
actions) and the accuracy per root cause. Exit status 1 on any mismatch, or whenever the
rule tier says "high" for a case whose expected severity is not high.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from core.settings import load_settings
from core.telemetry import configure_logging
from sandbox.cases import Expected, discover, load_case
from service.commands.investigate_cmd import Progress, run_case

ROOT = Path(__file__).resolve().parents[2]


def compare(rec: dict[str, Any], expected: Expected) -> list[str]:
    """Return the ways a replay record falls short of the expected outcome."""
    problems = []
    d = rec.get("diagnosis") or {}
    if d.get("root_cause") != expected.root_cause.value:
        problems.append(f"root_cause {d.get('root_cause')} != {expected.root_cause.value}")
    if d.get("severity") != expected.severity.value:
        problems.append(f"severity {d.get('severity')} != {expected.severity.value}")
    cited = {(c["source"], c.get("ref")) for c in d.get("cited") or []}
    for ev in expected.evidence:
        source = ev.source
        if ev.ref is None:
            if not any(s == source for s, _ in cited):
                problems.append(f"no {source} citation")
        elif (source, ev.ref) not in cited:
            problems.append(f"evidence {source}:{ev.ref} not cited")
    actions = rec.get("actions") or []
    proposed = {a["type"] for a in actions}
    for a in expected.actions.propose:
        if a.value not in proposed:
            problems.append(f"{a.value} not proposed")
    for a in actions:
        if a["type"] in {x.value for x in expected.actions.never_execute} \
                and a.get("status") == "executed":
            problems.append(f"{a['type']} executed")
    return problems


async def main(prefix: str) -> int:
    configure_logging(level="ERROR")
    settings = load_settings(None, data_dir=tempfile.mkdtemp(prefix="gen-check-"))
    per_cause: dict[str, list[bool]] = defaultdict(list)
    bad = high_wrong = 0
    for path in discover(ROOT / "evals" / "cases"):
        if not path.name.startswith(prefix):
            continue
        rec, case_id, _ = await run_case(path, settings, Progress(True))
        expected = load_case(path).case.expected
        if expected is None:
            continue
        problems = compare(rec, expected)
        d = rec.get("diagnosis") or {}
        ok = d.get("root_cause") == expected.root_cause.value
        per_cause[expected.root_cause.value].append(ok)
        if d.get("severity") == "high" and expected.severity.value != "high":
            high_wrong += 1
        bad += bool(problems)
        print(("OK " if not problems else "BAD"), case_id, d.get("root_cause"), d.get("severity"),
              "; ".join(problems), flush=True)
    print()
    for cause, oks in sorted(per_cause.items()):
        print(f"{cause:32} {sum(oks)}/{len(oks)}")
    total = sum(len(v) for v in per_cause.values())
    right = sum(sum(v) for v in per_cause.values())
    print(f"{'root cause accuracy':32} {right}/{total}; cases with any shortfall: {bad}; "
          f"false 'high': {high_wrong}")
    return 1 if bad or high_wrong else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="gen-")
    sys.exit(asyncio.run(main(parser.parse_args().prefix)))
