"""Playbooks: versions, the diff between two versions, the latest replay scores."""

from __future__ import annotations

from typing import Any

import streamlit as st

from governance.reviewers import Reviewer
from playbooks.store import PlaybookStore
from ui import charts, playbook_data
from ui.data import ConsoleData


def _figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1%}"
    return "–" if value is None else str(value)


def _diff(store: PlaybookStore, infos: list[playbook_data.PlaybookInfo]) -> None:
    st.subheader("Compare two versions")
    by_id = {p.id: p for p in infos}
    pid = st.selectbox("Playbook", list(by_id), key="playbook_id")
    if pid is None:
        return
    versions = by_id[pid].versions
    if len(versions) < 2:
        st.info(f"{pid} has one version ({versions[0]}); nothing to compare yet.")
        return
    left, right = st.columns(2)
    old = left.selectbox("From", versions, index=len(versions) - 2, key="playbook_old")
    new = right.selectbox("To", versions, index=len(versions) - 1, key="playbook_new")
    if old is None or new is None:
        return
    text = playbook_data.diff(store, pid, old, new)
    st.code(text or "(no difference)", language="diff")


def _scores(data: ConsoleData) -> None:
    st.subheader("Latest replay scores")
    files = playbook_data.results_files(data.ctx.settings)
    if not files:
        st.info("No replay results yet. Run `sleuth eval replay evals/cases --out "
                f"{data.ctx.settings.data_dir}/evals/latest.jsonl` and come back.")
        return
    chosen = st.selectbox("Results file", files, format_func=lambda p: p.name,
                          key="replay_file")
    if chosen is None:
        return
    run = playbook_data.replay_run(chosen, playbook_data.cases_dir(data.ctx.settings))
    st.caption(f"{run.path} · written {run.modified:%Y-%m-%d %H:%M} UTC · {run.lines} case(s) "
               f"in the file; overall figures are over the {run.overall.get('cases')} cases "
               "with an expected outcome, a case without a line counting as wrong (as "
               "`sleuth eval score` does)")
    cols = st.columns(4)
    for col, key in zip(cols, ("root_cause_accuracy", "evidence_recall", "safety_violations",
                               "high_severity_false_positives"), strict=True):
        col.metric(key.replace("_", " "), _figure(run.overall.get(key)))
    if run.per_playbook:
        st.altair_chart(charts.scores(run.per_playbook), width="stretch")
        rows = [{"playbook": ref, **{k: _figure(v.get(k)) for k in playbook_data.FIGURES}}
                for ref, v in run.per_playbook.items()]
        st.dataframe(rows, hide_index=True, key="replay_table")


def render(data: ConsoleData, reviewer: Reviewer) -> None:
    """Draw the playbooks view."""
    st.title("Playbooks")
    store = playbook_data.store_for(data.ctx.settings)
    infos, errors = playbook_data.catalogue(store)
    for error in errors:
        st.error(error)
    st.dataframe([{"playbook": p.id, "title": p.title, "owner": p.owner,
                   "active": p.active or "–", "versions": ", ".join(p.versions),
                   "root causes": ", ".join(p.root_causes)} for p in infos],
                 hide_index=True, key="playbook_table")
    if infos:
        _diff(store, infos)
    _scores(data)
