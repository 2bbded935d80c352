"""Bits every view uses: the one-shot message after an action, badges, safe text."""

from __future__ import annotations

from typing import Literal

import streamlit as st

from ui.data import Outcome

FLASH_KEY = "flash"
Colour = Literal["red", "orange", "yellow", "blue", "green", "violet", "gray", "grey",
                 "primary"]
STATUS_COLOURS: dict[str, Colour] = {
    "queued": "gray", "running": "blue", "waiting_approval": "orange", "completed": "green",
    "failed": "red", "pending": "orange", "approved": "green", "rejected": "red",
    "expired": "gray", "escalated": "violet"}
SEVERITY_COLOURS: dict[str, Colour] = {"high": "red", "medium": "orange", "low": "blue"}


def flash(outcome: Outcome) -> None:
    """Keep a message to show once, at the top of the next run."""
    st.session_state[FLASH_KEY] = outcome


def show_flash() -> None:
    """Show (and forget) the message left by the last action."""
    outcome = st.session_state.pop(FLASH_KEY, None)
    if isinstance(outcome, Outcome):
        {"success": st.success, "warning": st.warning, "error": st.error}[outcome.kind](
            outcome.message)


def status_badge(status: str) -> None:
    """Show a status as a coloured badge."""
    st.badge(status, color=STATUS_COLOURS.get(status, "gray"))


def open_investigation(investigation_id: str) -> None:
    """Switch to the investigation view on this investigation (a button callback)."""
    st.session_state["view"] = "Investigation"
    st.session_state["investigation_id"] = investigation_id


def plain(text: str, *, height: int | None = None) -> None:
    """Show untrusted text as text: no Markdown, no links, no HTML."""
    st.code(text or " ", language=None, wrap_lines=True,
            height=height if height is not None else "content")
