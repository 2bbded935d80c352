"""One investigation: where it stands, its timeline, sources, playbooks and audit entries."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from governance.reviewers import Reviewer
from service.investigations import (
    FINISHED,
    Investigation,
    InvestigationNotFoundError,
    Status,
)
from ui import charts
from ui.data import ConsoleData, InvestigationDetail
from ui.present import code_span, event_text, md_escape, timeline_rows
from ui.views.common import plain, status_badge

REFRESH_S = 2.0


def _label(row: Investigation) -> str:
    return f"{row.id} · ticket {row.ticket_id} · {row.status} · {row.created_at:%m-%d %H:%M}"


def _verify(data: ConsoleData) -> None:
    report = data.verify_audit()
    st.session_state["audit_report"] = report.model_dump(mode="json")


def _header(detail: InvestigationDetail) -> None:
    row = detail.row
    status_badge(row.status)
    cols = st.columns([2, 3, 1, 1, 1])
    cols[0].metric("Ticket", row.ticket_id)
    cols[1].metric("Root cause", row.root_cause or "–")
    cols[2].metric("Confidence", f"{row.confidence:.2f}" if row.confidence is not None else "–")
    cols[3].metric("Tier", row.tier or "–")
    cols[4].metric("Wall time", f"{row.wall_ms / 1000:.1f} s" if row.wall_ms else "–")
    st.caption(f"{row.source} · created {row.created_at:%Y-%m-%d %H:%M:%S} UTC · worker "
               f"{row.worker or '–'} · attempts {row.attempts}"
               + (f" · finished {row.finished_at:%H:%M:%S} UTC" if row.finished_at else ""))
    if detail.events:
        last = detail.events[-1]
        event = json.loads(last.data)
        st.markdown(f"Latest step: **{md_escape(str(event.get('step')))}** — "
                    f"{md_escape(event_text(event))} ({last.at:%H:%M:%S} UTC)")
    if row.error:
        st.error(f"Last error: {row.error}")


def _sources(detail: InvestigationDetail) -> None:
    record = detail.record
    left, right = st.columns(2)
    with left:
        st.markdown("**Degraded sources**")
        degraded = record.get("degraded_sources") or []
        failures = [c for c in record.get("calls") or [] if not c.get("ok")]
        if not degraded:
            st.caption("none: every source answered")
        for call in failures:
            error = call.get("error") or {}
            st.warning(f"{call.get('source')}.{call.get('operation')}: {error.get('kind')} "
                       f"({error.get('code')}) — {error.get('message', '')}")
    with right:
        st.markdown("**Playbook versions**")
        winning = record.get("winning_playbook") or {}
        used = [f"{p.get('id')}@{p.get('version')}" for p in record.get("playbooks") or []]
        if winning:
            ref = f"{winning.get('id')}@{winning.get('version')}"
            st.markdown(f"diagnosed by {code_span(ref)}")
        st.caption("routed: " + (", ".join(used) if used else "none recorded yet"))


def _timeline(detail: InvestigationDetail) -> None:
    st.subheader("Timeline")
    rows = timeline_rows(detail.record)
    if rows:
        st.altair_chart(charts.timeline(rows), width="stretch")
    events: list[dict[str, Any]] = []
    for event in detail.events:
        data = json.loads(event.data)
        events.append({"#": event.seq, "at (UTC)": f"{event.at:%H:%M:%S.%f}"[:-3],
                       "step": data.get("step"), "what": event_text(data)})
    # tall enough for a whole investigation (about 30 events) without scrolling the table
    st.dataframe(events, hide_index=True, key="timeline_events",
                 height=min(36 * (len(events) + 1) + 3, 1100))


def _actions(detail: InvestigationDetail) -> None:
    st.subheader("Actions and approvals")
    approvals = {a.action_index: a for a in detail.approvals}
    rows = []
    for action in detail.record.get("actions") or []:
        approval = approvals.get(int(action.get("index", -1)))
        rows.append({"#": action.get("index"), "action": action.get("type"),
                     "level": action.get("level"), "status": action.get("status"),
                     "approval": (f"{approval.id}: {approval.status}" if approval else "–"),
                     "why": action.get("why")})
    if rows:
        st.dataframe(rows, hide_index=True, key="investigation_actions")
    else:
        st.caption("no actions recorded yet")


def _audit(data: ConsoleData, detail: InvestigationDetail) -> None:
    st.subheader("Audit entries")
    st.button("Verify the audit chain", key="audit_verify", on_click=_verify, args=(data,))
    report = st.session_state.get("audit_report")
    if isinstance(report, dict):
        if report.get("ok"):
            st.success(f"The audit chain is intact: {report.get('checked')} entries checked, "
                       f"head {str(report.get('head_hash'))[:12]}.")
        else:
            st.error(f"The audit chain is broken at entry {report.get('first_broken_seq')}: "
                     f"{report.get('problem')} — {report.get('detail')}")
    rows = [{"seq": e.seq, "at (UTC)": f"{e.at:%H:%M:%S}", "kind": e.kind, "actor": e.actor,
             "hash": e.hash[:12], "intact": "yes" if e.is_intact() else "NO"}
            for e in detail.audit]
    st.dataframe(rows, hide_index=True, key="audit_entries")
    with st.expander("Entry payloads (redacted as stored)"):
        for entry in detail.audit:
            st.markdown(f"**{entry.seq} · {entry.kind}**")
            st.json(entry.payload, expanded=False)


def _detail(data: ConsoleData, reviewer: Reviewer, investigation_id: str) -> None:
    try:
        detail = data.investigation(investigation_id)
    except InvestigationNotFoundError:
        st.error(f"There is no investigation {investigation_id}.")
        return
    _header(detail)
    ticket, _ = data.ticket(detail.row, reviewer)
    with st.expander(f"Ticket: {ticket.subject}", expanded=False):
        st.caption("customer data redacted for your role" if ticket.redacted
                   else "originals shown")
        st.markdown(f"from {md_escape(ticket.requester or '-')}")
        plain(ticket.body)
    _sources(detail)
    _timeline(detail)
    _actions(detail)
    _audit(data, detail)


def render(data: ConsoleData, reviewer: Reviewer) -> None:
    """Draw the investigation view."""
    st.title("Investigation")
    recent = data.recent(limit=200)
    options = [r.id for r in recent]
    chosen = st.session_state.get("investigation_id")
    if isinstance(chosen, str) and chosen not in options:
        options.insert(0, chosen)  # opened from the queue: older than the recent list
    if not options:
        st.info("No investigations yet.")
        return
    labels = {r.id: _label(r) for r in recent}
    selected = st.selectbox("Investigation", options, key="investigation_id",
                            format_func=lambda i: labels.get(i, i))
    if selected is None:
        return
    status = next((r.status for r in recent if r.id == selected), None)
    live = status is None or Status(status) not in FINISHED
    follow = st.toggle("Follow live (refresh every 2 s while it runs or waits)", value=True,
                       key="investigation_follow")
    st.button("Refresh", key="investigation_refresh")

    @st.fragment(run_every=REFRESH_S if follow and live else None)
    def body() -> None:
        _detail(data, reviewer, selected)

    body()
