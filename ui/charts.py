"""Altair charts of the console, built from plain values (no Streamlit, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias, cast

import altair as alt

from service.insights import CallStats, ConfidencePoint, Percentiles, Usage

PERCENTILE_ORDER = ["p50", "p95", "p99"]
KIND_COLOURS = alt.Scale(domain=["step", "connector", "model"],
                         range=["#4c78a8", "#f58518", "#54a24b"])


ChartLike: TypeAlias = "alt.Chart | alt.LayerChart"


def _data(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"values": [dict(r) for r in rows]}  # inline data: no pandas needed


def _typed(chart: Any) -> ChartLike:
    return cast("ChartLike", chart)


def latency(groups: Mapping[str, Percentiles], title: str) -> ChartLike:
    """Grouped bars of p50/p95/p99 (ms) per name."""
    rows = [{"name": name, "percentile": label, "ms": value}
            for name, p in groups.items()
            for label, value in zip(PERCENTILE_ORDER, (p.p50, p.p95, p.p99), strict=True)
            if value is not None]
    return _typed(alt.Chart(_data(rows), title=title).mark_bar().encode(
        x=alt.X("ms:Q", title="milliseconds"),
        y=alt.Y("name:N", title=None),
        yOffset=alt.YOffset("percentile:N", sort=PERCENTILE_ORDER),
        color=alt.Color("percentile:N", sort=PERCENTILE_ORDER,
                        scale=alt.Scale(scheme="blues")),
        tooltip=["name:N", "percentile:N", alt.Tooltip("ms:Q", format=",.0f")]))


def error_rates(stats: Sequence[CallStats], title: str) -> ChartLike:
    """Bars of the failure rate of each connector or provider."""
    rows = [{"name": s.name, "rate": s.error_rate, "calls": s.calls, "failures": s.failures}
            for s in stats]
    return _typed(alt.Chart(_data(rows), title=title).mark_bar().encode(
        x=alt.X("rate:Q", title="failed calls", axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("name:N", title=None),
        color=alt.condition("datum.rate > 0.05", alt.value("#e45756"), alt.value("#4c78a8")),
        tooltip=["name:N", "calls:Q", "failures:Q", alt.Tooltip("rate:Q", format=".1%")]))


def usage_per_day(days: Sequence[Usage]) -> ChartLike:
    """Cost (bars) and tokens (line) per day."""
    rows = [{"day": d.key, "cost_usd": d.cost_usd,
             "tokens": d.input_tokens + d.output_tokens, "investigations": d.investigations}
            for d in days]
    base = alt.Chart(_data(rows), title="Model cost and tokens per day").encode(
        x=alt.X("day:T", title=None))
    bars = base.mark_bar(opacity=0.7).encode(
        y=alt.Y("cost_usd:Q", title="cost (USD)"),
        tooltip=["day:T", alt.Tooltip("cost_usd:Q", format="$.4f"), "tokens:Q",
                 "investigations:Q"])
    line = base.mark_line(point=True, color="#f58518").encode(
        y=alt.Y("tokens:Q", title="tokens"))
    return _typed(alt.layer(bars, line).resolve_scale(y="independent"))


def usage_per_investigation(items: Sequence[Usage], top: int = 30) -> ChartLike:
    """Bars of cost per investigation, the most expensive first."""
    ordered = sorted(items, key=lambda u: (-u.cost_usd, -(u.input_tokens + u.output_tokens)))
    rows = [{"investigation": u.key, "cost_usd": u.cost_usd,
             "tokens": u.input_tokens + u.output_tokens} for u in ordered[:top]]
    chart = alt.Chart(_data(rows), title=f"Cost per investigation (top {top})")
    return _typed(chart.mark_bar().encode(
        x=alt.X("cost_usd:Q", title="cost (USD)"),
        y=alt.Y("investigation:N", sort="-x", title=None),
        tooltip=["investigation:N", alt.Tooltip("cost_usd:Q", format="$.4f"), "tokens:Q"]))


def confidence_over_time(points: Sequence[ConfidencePoint]) -> ChartLike:
    """Box plots of diagnosis confidence per day, with each diagnosis as a dot."""
    rows = [{"day": p.at.date().isoformat(), "at": p.at.isoformat(),
             "confidence": p.confidence, "tier": p.tier, "root_cause": p.root_cause}
            for p in points]
    base = alt.Chart(_data(rows), title="Diagnosis confidence over time")
    boxes = base.mark_boxplot(extent="min-max", opacity=0.5).encode(
        x=alt.X("day:O", title=None), y=alt.Y("confidence:Q", scale=alt.Scale(domain=[0, 1])))
    dots = base.mark_circle(size=40, opacity=0.8).encode(
        x="day:O", y="confidence:Q", xOffset=alt.XOffset("jitter:Q"),
        color=alt.Color("tier:N"), tooltip=["at:T", "tier:N", "root_cause:N",
                                            alt.Tooltip("confidence:Q", format=".2f")],
    ).transform_calculate(jitter="random()")
    return _typed(alt.layer(boxes, dots))


def timeline(steps: Sequence[Mapping[str, Any]]) -> ChartLike:
    """Horizontal bars of how long each graph step, connector call and model call took."""
    order = [str(s["name"]) for s in steps]
    return _typed(alt.Chart(_data(steps), title="Where the time went").mark_bar().encode(
        x=alt.X("ms:Q", title="milliseconds"),
        y=alt.Y("name:N", sort=order, title=None),
        color=alt.Color("kind:N", scale=KIND_COLOURS),
        tooltip=["kind:N", "name:N", alt.Tooltip("ms:Q", format=",.1f"), "outcome:N"]))


def scores(per_playbook: Mapping[str, Mapping[str, Any]]) -> ChartLike:
    """Bars of root-cause accuracy and evidence recall per playbook version."""
    rows = [{"playbook": ref, "figure": figure, "value": figures.get(key)}
            for ref, figures in per_playbook.items()
            for figure, key in (("root-cause accuracy", "root_cause_accuracy"),
                                ("evidence recall", "evidence_recall"))
            if figures.get(key) is not None]
    chart = alt.Chart(_data(rows), title="Latest replay, per playbook version")
    return _typed(chart.mark_bar().encode(
        x=alt.X("value:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1]),
                title=None),
        y=alt.Y("playbook:N", title=None),
        yOffset="figure:N", color="figure:N",
        tooltip=["playbook:N", "figure:N", alt.Tooltip("value:Q", format=".1%")]))
