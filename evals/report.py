"""Reports of a scored replay: Markdown, self-contained HTML (inline SVG), JUnit XML, and a
case-by-case comparison of two results files."""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from evals.score import CaseExpectation, Scorecard, score

FIGURES: list[tuple[str, str, str]] = [
    # key, label, kind: pct | int | ms
    ("root_cause_accuracy", "Root-cause accuracy", "pct"),
    ("severity_accuracy", "Severity accuracy", "pct"),
    ("escalation_accuracy", "Escalation accuracy", "pct"),
    ("evidence_recall", "Evidence recall", "pct"),
    ("action_recall", "Proposed-action recall", "pct"),
    ("high_severity_false_positives", "High-severity false positives", "int"),
    ("safety_violations", "Safety violations", "int"),
    ("errors", "Cases that failed to replay", "int"),
    ("wall_ms_median", "Wall time median", "ms"),
    ("wall_ms_p95", "Wall time p95", "ms"),
]
# a lower value is better for these
LOWER_IS_BETTER = {"high_severity_false_positives", "safety_violations", "errors",
                   "wall_ms_median", "wall_ms_p95"}


def fmt(value: Any, kind: str) -> str:
    """Format one figure for people."""
    if value is None:
        return "n/a"
    if kind == "pct":
        return f"{100 * float(value):.1f}%"
    if kind == "ms":
        return f"{float(value):.0f} ms"
    return str(value)


# -- Markdown ------------------------------------------------------------------


def markdown(card: Scorecard, title: str = "Replay scores") -> str:
    """Return a Markdown summary: figures, per root cause, failing cases."""
    o = card.overall
    out = [f"# {title}", "", f"{o['cases']} case(s) scored, {o['errors']} failed to replay.", "",
           "| figure | value |", "|---|---|"]
    out += [f"| {label} | {fmt(o[key], kind)} |" for key, label, kind in FIGURES]
    if card.usage:
        u = card.usage
        out += [f"| Tokens in / out | {u.get('input_tokens', 0)} / {u.get('output_tokens', 0)} |",
                f"| Cost (USD) | {u['cost_usd']:.4f} ({u['cost_usd_per_case']:.4f} a case) |"]
    out += ["", "## Per root cause", "",
            "| root cause | cases | root cause | severity | evidence | actions | escalation "
            "| high-sev FP | safety |", "|---|---|---|---|---|---|---|---|---|"]
    for rc, f in card.per_root_cause.items():
        out.append(f"| `{rc}` | {f['cases']} | {fmt(f['root_cause_accuracy'], 'pct')} | "
                   f"{fmt(f['severity_accuracy'], 'pct')} | {fmt(f['evidence_recall'], 'pct')} | "
                   f"{fmt(f['action_recall'], 'pct')} | {fmt(f['escalation_accuracy'], 'pct')} | "
                   f"{f['high_severity_false_positives']} | {f['safety_violations']} |")
    problems = [c for c in card.cases if not c.passed or c.missing_evidence
                or c.missing_actions or not c.severity_ok or c.high_severity_fp]
    out += ["", "## Cases with a problem", ""]
    if not problems:
        out.append("None.")
    for c in problems:
        bits = []
        if c.error:
            bits.append(f"error: {c.error}")
        else:
            if not c.root_cause_ok:
                bits.append(f"root cause {c.predicted_root_cause} (expected "
                            f"{c.expected_root_cause})")
            if not c.severity_ok:
                bits.append(f"severity {c.predicted_severity} (expected {c.expected_severity})")
            if c.missing_evidence:
                bits.append("missing evidence " + ", ".join(c.missing_evidence))
            if c.missing_actions:
                bits.append("missing actions " + ", ".join(c.missing_actions))
        bits += [f"SAFETY: {v}" for v in c.safety_violations]
        out.append(f"- `{c.case_id}`: " + "; ".join(bits))
    return "\n".join(out) + "\n"


# -- HTML with inline SVG ------------------------------------------------------------


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def svg_bars(items: list[tuple[str, float]], *, title: str, width: int = 640,
             unit: str = "%", scale: float = 100.0) -> str:
    """Return a horizontal bar chart; values are fractions of `scale` shown in `unit`."""
    row, label_w = 26, 230
    height = 40 + row * max(1, len(items))
    top = max([v for _, v in items] + [scale])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{_esc(title)}">',
             f'<text x="4" y="18" font-size="14" font-weight="bold">{_esc(title)}</text>']
    span = width - label_w - 70
    for i, (label, value) in enumerate(items):
        y = 30 + i * row
        w = 0 if top <= 0 else span * value / top
        colour = "#2e7d32" if unit != "%" or value >= 0.9 * scale else (
            "#f9a825" if value >= 0.6 * scale else "#c62828")
        shown = f"{value:.0f}{unit}" if unit == "%" else f"{value:g}{unit}"
        parts += [f'<text x="{label_w - 6}" y="{y + 15}" font-size="12" '
                  f'text-anchor="end">{_esc(label)}</text>',
                  f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" '
                  f'fill="{colour}"><title>{_esc(label)}: {shown}</title></rect>',
                  f'<text x="{label_w + w + 4:.1f}" y="{y + 15}" font-size="12">{shown}</text>']
    parts.append("</svg>")
    return "".join(parts)


def svg_confusion(confusion: dict[str, dict[str, int]]) -> str:
    """Return a confusion matrix: expected root causes down, predicted across."""
    truths = sorted(confusion)
    predicted = sorted({p for row in confusion.values() for p in row} | set(truths))
    cell, left, head = 34, 230, 200
    width, height = left + cell * len(predicted) + 10, head + cell * len(truths) + 10
    peak = max([n for row in confusion.values() for n in row.values()] + [1])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="confusion matrix">',
             '<text x="4" y="18" font-size="14" font-weight="bold">Confusion matrix '
             '(rows: expected, columns: predicted)</text>']
    for j, name in enumerate(predicted):
        x = left + j * cell + cell / 2
        parts.append(f'<text x="{x:.0f}" y="{head - 6}" font-size="11" '
                     f'transform="rotate(-60 {x:.0f} {head - 6})">{_esc(name)}</text>')
    for i, truth in enumerate(truths):
        y = head + i * cell
        parts.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4:.0f}" font-size="11" '
                     f'text-anchor="end">{_esc(truth)}</text>')
        for j, name in enumerate(predicted):
            n = confusion[truth].get(name, 0)
            shade = 0 if n == 0 else 0.2 + 0.8 * n / peak
            colour = "46,125,50" if name == truth else "198,40,40"
            parts.append(f'<rect x="{left + j * cell}" y="{y}" width="{cell - 2}" '
                         f'height="{cell - 2}" fill="rgba({colour},{shade:.2f})" '
                         f'stroke="#ccc"><title>{_esc(truth)} → {_esc(name)}: {n}</title></rect>')
            if n:
                parts.append(f'<text x="{left + j * cell + cell / 2 - 1:.0f}" '
                             f'y="{y + cell / 2 + 4:.0f}" font-size="12" '
                             f'text-anchor="middle">{n}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_histogram(values: list[float], *, title: str, bins: int = 12, width: int = 640) -> str:
    """Return a histogram of `values` (wall times in ms)."""
    height, left, bottom = 220, 40, 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{_esc(title)}">',
             f'<text x="4" y="18" font-size="14" font-weight="bold">{_esc(title)}</text>']
    if values:
        low, high = min(values), max(values)
        step = (high - low) / bins or 1.0
        counts = [0] * bins
        for v in values:
            counts[min(bins - 1, int((v - low) / step))] += 1
        peak = max(counts)
        plot_h = height - bottom - 30
        bar_w = (width - left - 10) / bins
        for i, n in enumerate(counts):
            h = plot_h * n / peak
            x = left + i * bar_w
            parts.append(f'<rect x="{x:.1f}" y="{height - bottom - h:.1f}" '
                         f'width="{bar_w - 2:.1f}" height="{h:.1f}" fill="#1565c0">'
                         f'<title>{low + i * step:.0f}–{low + (i + 1) * step:.0f} ms: {n}'
                         f'</title></rect>')
            if n:
                parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - bottom - h - 3:.1f}" '
                             f'font-size="11" text-anchor="middle">{n}</text>')
        parts += [f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" '
                  f'y2="{height - bottom}" stroke="#333"/>',
                  f'<text x="{left}" y="{height - bottom + 16}" font-size="11">{low:.0f} ms</text>',
                  f'<text x="{width - 10}" y="{height - bottom + 16}" font-size="11" '
                  f'text-anchor="end">{high:.0f} ms</text>']
    else:
        parts.append('<text x="4" y="50" font-size="12">no timings</text>')
    parts.append("</svg>")
    return "".join(parts)


def html_report(card: Scorecard, title: str = "Replay scores") -> str:
    """Return a self-contained HTML page: figures, plots and the per-case table."""
    o = card.overall
    figures = "".join(f"<tr><th>{_esc(label)}</th><td>{_esc(fmt(o[key], kind))}</td></tr>"
                      for key, label, kind in FIGURES)
    if card.usage:
        figures += (f"<tr><th>Tokens in / out</th><td>{card.usage.get('input_tokens', 0)} / "
                    f"{card.usage.get('output_tokens', 0)}</td></tr>"
                    f"<tr><th>Cost (USD)</th><td>{card.usage['cost_usd']:.4f}</td></tr>")
    accuracy = [(rc, 100 * float(f["root_cause_accuracy"] or 0))
                for rc, f in card.per_root_cause.items()]
    walls = [float(c.wall_ms) for c in card.cases if c.wall_ms is not None]
    rows = []
    for c in card.cases:
        verdict = "pass" if c.passed else "fail"
        rows.append(
            f'<tr class="{verdict}"><td>{_esc(c.case_id)}</td>'
            f"<td>{_esc(c.expected_root_cause)}</td><td>{_esc(c.predicted_root_cause)}</td>"
            f"<td>{_esc(c.expected_severity)} / {_esc(c.predicted_severity)}</td>"
            f"<td>{c.evidence_found}/{c.evidence_expected}</td>"
            f"<td>{c.actions_found}/{c.actions_expected}</td>"
            f"<td>{_esc('; '.join(c.safety_violations))}</td>"
            f"<td>{_esc(fmt(c.wall_ms, 'ms'))}</td><td>{_esc(c.error or '')}</td></tr>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ddd; padding: 4px 8px; text-align: left; font-size: 13px; }}
tr.fail td {{ background: #fdecea; }}
.charts svg {{ display: block; margin: 1em 0; }}
</style></head><body>
<h1>{_esc(title)}</h1>
<p>{o['cases']} case(s) scored, {o['errors']} failed to replay.</p>
<table>{figures}</table>
<div class="charts">
{svg_bars(accuracy, title="Root-cause accuracy per root cause")}
{svg_confusion(card.confusion)}
{svg_histogram(walls, title="Wall time per case (ms)")}
</div>
<h2>Cases</h2>
<table><tr><th>case</th><th>expected</th><th>predicted</th><th>severity exp/pred</th>
<th>evidence</th><th>actions</th><th>safety</th><th>wall</th><th>error</th></tr>
{''.join(rows)}
</table>
</body></html>
"""


# -- JUnit XML -----------------------------------------------------------------


def junit(card: Scorecard, suite: str = "sleuth-eval") -> str:
    """Return JUnit XML: one testcase per case; a failure when root cause is wrong or unsafe."""
    failures = sum(1 for c in card.cases if not c.passed and c.error is None)
    errors = sum(1 for c in card.cases if c.error is not None)
    total_s = sum(float(c.wall_ms or 0) for c in card.cases) / 1000
    root = ET.Element("testsuites", name=suite, tests=str(len(card.cases)),
                      failures=str(failures), errors=str(errors), time=f"{total_s:.3f}")
    node = ET.SubElement(root, "testsuite", name=suite, tests=str(len(card.cases)),
                         failures=str(failures), errors=str(errors), time=f"{total_s:.3f}")
    for c in card.cases:
        case = ET.SubElement(node, "testcase", classname=f"{suite}.{c.expected_root_cause}",
                             name=c.case_id, time=f"{float(c.wall_ms or 0) / 1000:.3f}")
        if c.error is not None:
            ET.SubElement(case, "error", message=c.error[:500], type="replay_error").text = c.error
            continue
        reasons = []
        if not c.root_cause_ok:
            reasons.append(f"root cause {c.predicted_root_cause}, expected "
                           f"{c.expected_root_cause}")
        reasons += [f"safety violation: {v}" for v in c.safety_violations]
        if reasons:
            ET.SubElement(case, "failure", message="; ".join(reasons)[:500],
                          type="wrong" if c.root_cause_ok is False else "unsafe").text = \
                "\n".join(reasons)
        notes = []
        if not c.severity_ok:
            notes.append(f"severity {c.predicted_severity}, expected {c.expected_severity}")
        if c.missing_evidence:
            notes.append("missing evidence: " + ", ".join(c.missing_evidence))
        if c.missing_actions:
            notes.append("missing actions: " + ", ".join(c.missing_actions))
        if notes:
            ET.SubElement(case, "system-out").text = "\n".join(notes)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") \
        + "\n"


# -- comparison ------------------------------------------------------------------


@dataclass
class Comparison:
    """What changed between two replays of the same cases."""

    changes: dict[str, list[str]]  # case id -> changes
    deltas: dict[str, tuple[Any, Any]]  # figure -> (baseline, new)
    baseline: Scorecard
    new: Scorecard
    regressions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"changes": self.changes, "regressions": self.regressions,
                "deltas": {k: {"baseline": a, "new": b} for k, (a, b) in self.deltas.items()}}


def _cites(line: dict[str, Any] | None) -> set[str]:
    return {f"{c.get('source')}:{c.get('ref')}" for c in (line or {}).get("cited") or []}


def _acts(line: dict[str, Any] | None) -> set[str]:
    return {f"{a.get('type')}[{a.get('status')}]" for a in (line or {}).get("actions") or []}


def compare(baseline: list[dict[str, Any]], new: list[dict[str, Any]],
            cases: dict[str, CaseExpectation]) -> Comparison:
    """Compare two results files case by case, and their figures."""
    old_by = {str(ln.get("case_id")): ln for ln in baseline}
    new_by = {str(ln.get("case_id")): ln for ln in new}
    changes: dict[str, list[str]] = {}
    for case_id in sorted(set(old_by) | set(new_by)):
        a, b = old_by.get(case_id), new_by.get(case_id)
        found: list[str] = []
        if a is None or b is None:
            found.append("only in the new results" if a is None else "missing from the new "
                                                                     "results")
        else:
            for key in ("error", "root_cause", "severity", "escalated", "tier", "playbook"):
                if a.get(key) != b.get(key):
                    found.append(f"{key}: {json.dumps(a.get(key))} → {json.dumps(b.get(key))}")
            lost, gained = _cites(a) - _cites(b), _cites(b) - _cites(a)
            if lost or gained:
                found.append("cited: " + ", ".join([f"-{x}" for x in sorted(lost)]
                                                   + [f"+{x}" for x in sorted(gained)]))
            lost, gained = _acts(a) - _acts(b), _acts(b) - _acts(a)
            if lost or gained:
                found.append("actions: " + ", ".join([f"-{x}" for x in sorted(lost)]
                                                     + [f"+{x}" for x in sorted(gained)]))
        if found:
            changes[case_id] = found
    old_card, new_card = score(baseline, cases), score(new, cases)
    deltas = {key: (old_card.overall[key], new_card.overall[key]) for key, _, _ in FIGURES}
    regressions = []
    for key, label, kind in FIGURES:
        if key.startswith("wall_ms"):
            continue
        a, b = deltas[key]
        if a is None or b is None:
            continue
        worse = b > a if key in LOWER_IS_BETTER else b < a
        if worse:
            regressions.append(f"{label}: {fmt(a, kind)} → {fmt(b, kind)}")
    return Comparison(changes, deltas, old_card, new_card, regressions)


def compare_markdown(result: Comparison) -> str:
    """Return the comparison as Markdown."""
    out = ["# Replay comparison", "", "| figure | baseline | new | change |", "|---|---|---|---|"]
    for key, label, kind in FIGURES:
        a, b = result.deltas[key]
        if a is None or b is None:
            change = ""
        else:
            d = float(b) - float(a)
            change = "" if d == 0 else (f"{100 * d:+.1f} pts" if kind == "pct"
                                        else f"{d:+.0f}")
        out.append(f"| {label} | {fmt(a, kind)} | {fmt(b, kind)} | {change} |")
    out += ["", f"## Changed cases ({len(result.changes)})", ""]
    if not result.changes:
        out.append("No case changed.")
    for case_id, found in result.changes.items():
        out.append(f"- `{case_id}`")
        out += [f"  - {x}" for x in found]
    if result.regressions:
        out += ["", "## Worse", ""] + [f"- {r}" for r in result.regressions]
    return "\n".join(out) + "\n"
