"""Operations: latency, errors, breakers, tokens and cost, people's part, confidence."""

from __future__ import annotations

from typing import Any

import streamlit as st

from governance.reviewers import Reviewer
from service.insights import Breaker, Insights
from ui import charts
from ui.data import ConsoleData
from ui.present import duration
from ui.views.common import Colour

WINDOWS = {"last 24 hours": 1.0, "last 7 days": 7.0, "last 30 days": 30.0}
BREAKER_COLOURS: dict[str, Colour] = {"closed": "green", "half_open": "yellow", "open": "red",
                                      "failing": "orange", "unknown": "gray"}


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _people(figures: Insights) -> None:
    cols = st.columns(4)
    cols[0].metric("Investigations", figures.investigations,
                   help=", ".join(f"{k}: {v}" for k, v in sorted(figures.by_status.items())))
    cols[1].metric("Automation rate", _rate(figures.automation_rate),
                   help="completed with no approval requested, not escalated, not human tier")
    cols[2].metric("Human override rate", _rate(figures.override_rate),
                   help=f"rejected, or replies approved after editing, of {figures.decided} "
                        "decided approvals")
    turnaround = figures.turnaround_s
    cols[3].metric("Approval turnaround (p50)",
                   duration(turnaround.p50) if turnaround.p50 is not None else "–",
                   help=("p95 " + duration(turnaround.p95)) if turnaround.p95 is not None
                   else "no decided approvals in the window")


def _latency(figures: Insights) -> None:
    st.subheader("Latency")
    cols = st.columns(3)
    cols[0].altair_chart(charts.latency({"investigation": figures.investigation_ms},
                                        "Investigations (wall time)"), width="stretch")
    cols[1].altair_chart(charts.latency({s.name: s.latency_ms for s in figures.connectors},
                                        "Connector calls"), width="stretch")
    cols[2].altair_chart(charts.latency({s.name: s.latency_ms for s in figures.providers},
                                        "Model calls, per provider"), width="stretch")


def _errors(figures: Insights) -> None:
    st.subheader("Errors")
    left, right = st.columns(2)
    left.altair_chart(charts.error_rates(figures.connectors, "Failed connector calls"),
                      width="stretch")
    right.altair_chart(charts.error_rates(figures.providers, "Failed model calls"),
                       width="stretch")


def _breakers(breakers: list[Breaker]) -> None:
    st.subheader("Circuit breakers")
    if breakers and not breakers[0].live:
        st.caption("Breakers live in each worker's memory (breaker_backend=memory), so these "
                   "are inferred from the newest investigation that used each one; hover for "
                   "where. With breaker_backend=redis the console reads the shared states.")
    cols = st.columns(4)
    for index, breaker in enumerate(breakers):
        with cols[index % 4]:
            st.badge(f"{breaker.name}: {breaker.status}",
                     color=BREAKER_COLOURS.get(breaker.status, "gray"), help=breaker.detail)


def _usage(figures: Insights) -> None:
    st.subheader("Tokens and cost")
    total = sum(d.cost_usd for d in figures.per_day)
    tokens = sum(d.input_tokens + d.output_tokens for d in figures.per_day)
    per = total / len(figures.per_investigation) if figures.per_investigation else 0.0
    cols = st.columns(3)
    cols[0].metric("Cost in the window", f"${total:,.4f}")
    cols[1].metric("Tokens in the window", f"{tokens:,}")
    cols[2].metric("Cost per investigation", f"${per:,.4f}")
    left, right = st.columns(2)
    left.altair_chart(charts.usage_per_day(figures.per_day), width="stretch")
    right.altair_chart(charts.usage_per_investigation(figures.per_investigation),
                       width="stretch")


def render(data: ConsoleData, reviewer: Reviewer) -> None:
    """Draw the operations view."""
    st.title("Operations")
    window = st.radio("Window", list(WINDOWS), index=1, horizontal=True, key="ops_window")
    figures, breakers = data.operations(WINDOWS[window or "last 7 days"])
    st.caption(f"{figures.since:%Y-%m-%d %H:%M} – {figures.until:%Y-%m-%d %H:%M} UTC")
    if figures.investigations == 0:
        st.info("No investigations in this window.")
    _people(figures)
    _latency(figures)
    _errors(figures)
    _breakers(breakers)
    _usage(figures)
    st.subheader("Diagnosis confidence")
    st.altair_chart(charts.confidence_over_time(figures.confidence), width="stretch")
    summary: dict[str, Any] = {"connectors": {s.name: s.calls for s in figures.connectors},
                               "providers": {s.name: s.calls for s in figures.providers}}
    with st.expander("Call counts"):
        st.json(summary)
