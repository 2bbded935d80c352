"""The approval queue: what waits for a person, most severe and oldest first.

The table lists every pending approval the reviewer may decide (or all of them, read-only
for the others); below it each approval of the current page is shown in full — ticket,
diagnosis, cited evidence, the proposed action — with its decision form. Decisions run in
button callbacks against the version of the approval that was shown, so a reviewer never
decides on something that changed under them.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import streamlit as st

from governance.approvals import Decision
from governance.reviewers import Reviewer
from ui.data import ConsoleData, Outcome, QueueCard, QueueRow
from ui.present import age, code_span, md_escape, time_left, within
from ui.views.common import (
    SEVERITY_COLOURS,
    flash,
    open_investigation,
    plain,
    status_badge,
)

PAGE_SIZE = 5
SOON = timedelta(hours=1)


def _decide(data: ConsoleData, name: str, request_id: int, decision: Decision,
            version: int, editable: bool) -> None:
    reviewer = data.reviewer(name)
    if reviewer is None:
        flash(Outcome("error", "You are no longer a configured reviewer; sign in again."))
        return
    state = st.session_state
    edited = state.get(f"edit-{request_id}") if editable and decision == "approve" else None
    outcome = data.decide(
        request_id, reviewer, decision, seen_version=version,
        reason=str(state.get(f"reason-{request_id}") or ""),
        edited_text=str(edited) if edited is not None else None,
        confirmed=bool(state.get(f"confirm-{request_id}")))
    flash(outcome)


def _table(rows: list[QueueRow], now: datetime) -> None:
    records: list[dict[str, Any]] = [{
        "id": r.id, "severity": r.severity or "?", "action": r.request.action_type,
        "level": r.request.level, "ticket": r.ticket_id, "root cause": r.root_cause or "?",
        "confidence": r.confidence, "waiting": age(r.request.created_at, now),
        "expires": time_left(r.request.expires_at, now),
        "approvals": f"{r.approvals}/{r.request.approvals_required}",
        "you may decide": "yes" if r.may_decide else "no",
    } for r in rows]
    st.dataframe(records, hide_index=True, key="queue_table", column_config={
        "confidence": st.column_config.ProgressColumn("confidence", min_value=0.0,
                                                      max_value=1.0, format="%.2f")})


def _ticket(card: QueueCard) -> None:
    t = card.ticket
    st.markdown(f"**Ticket {md_escape(t.id)}** · {md_escape(t.source)} · priority "
                f"{md_escape(t.priority or '-')}")
    st.caption("customer data redacted for your role" if t.redacted
               else "originals shown (your role writes to customers)")
    st.markdown(f"**{md_escape(t.subject)}**  \nfrom {md_escape(t.requester or '-')}")
    plain(t.body, height=160)


def _diagnosis(card: QueueCard) -> None:
    r = card.row
    confidence = f"{r.confidence:.2f}" if r.confidence is not None else "?"
    st.markdown(f"**Diagnosis** {code_span(r.root_cause or '?')} · confidence "
                f"**{confidence}** · tier {code_span(r.tier or '?')}")
    if card.summary:
        st.markdown(md_escape(card.summary))
    st.markdown("**Cited evidence**")
    if not card.evidence:
        st.caption("The diagnosis cites no evidence.")
    for item in card.evidence:
        label = f"{item.source}:{item.ref}"
        if item.missing is not None:
            st.warning(f"{label} — evidence unavailable: {item.missing}", icon="⚠️")
            continue
        title = md_escape(item.title or label)
        link = (f"[{title}]({item.url})" if item.url
                else f"{title} (no link: this source has no web page)")
        st.markdown(f"- {link} {code_span(label)}  \n  {md_escape(item.summary)}")


def _action(card: QueueCard) -> None:
    request = card.row.request
    st.markdown(f"**Proposed action** `{request.action_type}` · level **{request.level}**")
    if request.action_reason:
        st.markdown(f"Because: {md_escape(request.action_reason)}")
    st.caption(f"Taxonomy {request.taxonomy_version}: {request.why}")
    if request.params:
        st.code(json.dumps(request.params, indent=2, sort_keys=True), language="json")
    if card.amount_text is not None:
        st.markdown(f"**Amount:** {md_escape(card.amount_text)}")
    if request.approvals_required > 1:
        st.markdown(f"Needs **{request.approvals_required} different approvers** "
                    f"({', '.join(request.approver_roles)}).")
    for decision in card.decisions:
        first = "Approved first by" if decision.decision == "approve" else "Rejected by"
        st.info(f"{first} {decision.reviewer} ({decision.role}) at "
                f"{decision.decided_at:%Y-%m-%d %H:%M} UTC"
                + (f": “{decision.reason}”" if decision.reason else ""), icon="✅")


def _form(data: ConsoleData, reviewer: Reviewer, card: QueueCard) -> None:
    request = card.row.request
    rid = request.id or 0
    editable = (request.action_type == "send_customer_reply" and card.draft_text is not None
                and not card.ticket.redacted)
    # Enter in the reason field must not submit: it would press the first button, Approve
    with st.form(f"decide-{rid}", border=False, enter_to_submit=False):
        if editable:
            st.text_area("Reply to the customer (edit it to approve your version)",
                         value=card.draft_text or "", key=f"edit-{rid}", height=180)
        elif card.draft_text is not None:
            st.markdown("**Text to send**")
            plain(card.draft_text, height=160)
        needs = request.reason_required
        st.text_input("Reason" + (" (required)" if needs else " (required to reject)"),
                      key=f"reason-{rid}")
        if request.level == "financial":
            st.checkbox(f"I confirm this moves money: {card.amount_text or 'amount unknown'}",
                        key=f"confirm-{rid}")
        left, right = st.columns(2)
        args_common = (data, reviewer.name, rid)
        left.form_submit_button("Approve", type="primary", key=f"approve-{rid}",
                                on_click=_decide,
                                args=(*args_common, "approve", request.version, editable))
        right.form_submit_button("Reject", key=f"reject-{rid}", on_click=_decide,
                                 args=(*args_common, "reject", request.version, editable))


def _card(data: ConsoleData, reviewer: Reviewer, row: QueueRow, now: datetime) -> None:
    card = data.card(row, reviewer)
    request = row.request
    with st.container(border=True, key=f"card-{row.id}"):
        head, badges = st.columns([3, 2])
        head.subheader(f"#{row.id} · {request.action_type}")
        with badges:
            st.badge(row.severity or "severity ?",
                     color=SEVERITY_COLOURS.get(row.severity or "", "gray"))
            if row.expired:
                status_badge("expired")
            else:
                st.badge(time_left(request.expires_at, now),
                         color="red" if within(now, request.expires_at, SOON) else "gray")
            st.caption(f"waiting {age(request.created_at, now)} · investigation "
                       f"{request.investigation_id} ({card.investigation_status})")
        left, right = st.columns(2)
        with left:
            _ticket(card)
        with right:
            _diagnosis(card)
        _action(card)
        if row.refusal is not None:
            st.info(f"You cannot decide this: {row.refusal}.", icon="🔒")
        else:
            _form(data, reviewer, card)
        st.button("Open the investigation", key=f"open-{row.id}", on_click=open_investigation,
                  args=(request.investigation_id,))


def render(data: ConsoleData, reviewer: Reviewer) -> None:
    """Draw the approval queue."""
    st.title("Approval queue")
    everything = st.toggle("Show everything pending, also what my role may not decide",
                           key="queue_everything")
    rows = data.queue(reviewer, everything=everything)
    now = data.clock()
    decidable = [r for r in rows if r.may_decide]
    cols = st.columns(4)
    cols[0].metric("Waiting for you", len(decidable))
    cols[1].metric("Financial", sum(r.request.level == "financial" for r in decidable))
    cols[2].metric("Expiring within 1 h",
                   sum(within(now, r.request.expires_at, SOON) for r in decidable))
    cols[3].metric("Expired, not yet escalated", sum(r.expired for r in rows))
    if not rows:
        st.success("Nothing is waiting for you.")
        return
    _table(rows, now)
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    page = 1
    if pages > 1:
        if int(st.session_state.get("queue_page") or 1) > pages:
            st.session_state["queue_page"] = pages  # the queue shrank since the last run
        page = int(st.number_input(f"Page (of {pages}, {PAGE_SIZE} a page)", min_value=1,
                                   max_value=pages, value=1, step=1, key="queue_page"))
    for row in rows[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]:
        _card(data, reviewer, row, now)
