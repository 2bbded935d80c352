"""Playbooks for the console: versions, diffs, and scores of the latest eval replays.

Built on `playbooks.store.PlaybookStore` (what `sleuth playbooks` uses) and
`evals.score` (what `sleuth eval score` uses). Replay results are the JSONL files that
`sleuth eval replay … --out` writes; the console looks for them in `<data_dir>/evals/`
and `<data_dir>/`.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.settings import Settings
from playbooks.schema import version_tuple
from playbooks.store import DEFAULT_ROOT, PlaybookStore

DEFAULT_CASES = Path(__file__).resolve().parents[1] / "evals" / "cases"
FIGURES = ("cases", "root_cause_accuracy", "evidence_recall", "action_recall",
           "safety_violations", "high_severity_false_positives", "errors")


@dataclass(frozen=True)
class PlaybookInfo:
    """One playbook: its versions (oldest first) and the active one."""

    id: str
    title: str
    owner: str
    active: str | None
    versions: list[str]
    root_causes: list[str]


@dataclass(frozen=True)
class ReplayRun:
    """The scores of one replay results file, overall and per playbook version."""

    path: Path
    modified: datetime
    overall: dict[str, Any]
    per_playbook: dict[str, dict[str, Any]]  # "id@version" -> figures
    lines: int = 0  # cases in the file (the overall figures count a missing case as wrong)


def store_for(settings: Settings) -> PlaybookStore:
    """Return the playbook store the agent of these settings uses."""
    return PlaybookStore(settings.agent.playbooks_dir or DEFAULT_ROOT)


def catalogue(store: PlaybookStore) -> tuple[list[PlaybookInfo], list[str]]:
    """Return every playbook with its versions, and the files that failed to load."""
    loaded = store.load()
    active = store.active_versions()
    found: list[PlaybookInfo] = []
    for pid, versions in sorted(loaded.versions.items()):
        ordered = sorted(versions, key=version_tuple)
        shown = versions.get(active.get(pid, ""), versions[ordered[-1]])
        found.append(PlaybookInfo(
            id=pid, title=shown.title, owner=shown.owner, active=active.get(pid),
            versions=ordered,
            root_causes=sorted({h.root_cause.value for h in shown.hypotheses})))
    return found, [e.message for e in loaded.errors]


def diff(store: PlaybookStore, pid: str, old: str, new: str) -> str:
    """Return the unified diff between two versions of one playbook."""
    return store.diff(pid, old, pid, new)


def results_files(settings: Settings) -> list[Path]:
    """Return replay results files under the data directory, newest first."""
    folders = [settings.data_dir / "evals", settings.data_dir]
    files = {p.resolve() for folder in folders if folder.is_dir()
             for p in folder.glob("*.jsonl") if p.is_file()}
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)


def cases_dir(settings: Settings) -> Path:
    """Return the cases replays are scored against."""
    return settings.service.sandbox_cases or DEFAULT_CASES


def replay_run(results: Path, cases: Path) -> ReplayRun:
    """Score a results file, overall and for each playbook version that won a case."""
    stat = results.stat()
    return _scored(results.resolve(), stat.st_mtime_ns, stat.st_size, cases.resolve())


@functools.lru_cache(maxsize=16)
def _scored(results: Path, mtime_ns: int, size: int, cases: Path) -> ReplayRun:
    from evals.replay import read_results
    from evals.score import load_expectations, score

    lines = read_results(results)
    expectations = load_expectations(cases)
    overall = score(lines, expectations).overall
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        playbook = line.get("playbook") or {}
        if playbook.get("id"):
            groups[f"{playbook['id']}@{playbook.get('version', '?')}"].append(line)
    per: dict[str, dict[str, Any]] = {}
    for ref, subset in sorted(groups.items()):
        ids = {str(line.get("case_id")) for line in subset}
        per[ref] = score(subset, {k: v for k, v in expectations.items() if k in ids}).overall
    return ReplayRun(path=results, modified=datetime.fromtimestamp(mtime_ns / 1e9, UTC),
                     overall=overall, per_playbook=per, lines=len(lines))
