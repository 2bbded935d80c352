"""Signing reviewers in: configured users with scrypt-hashed passwords, or OIDC.

Password sign-in checks the governance reviewers (`governance/reviewers.py`: the file named
by `SLEUTH_GOVERNANCE__REVIEWERS_FILE`, the demo reviewers outside production). When
Streamlit's own OIDC sign-in is configured (an `[auth]` section in `.streamlit/secrets.toml`),
`st.login` is offered too, and the identity provider's e-mail is mapped to a configured
reviewer by the `[reviewer_emails]` section; the role always comes from the reviewers file.
Until someone is signed in, the console shows the sign-in form and nothing else.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import streamlit as st

from governance.reviewers import Reviewer, ReviewerAuthError
from ui.data import ConsoleData

SESSION_KEY = "reviewer"
MAX_FAILURES = 5
WINDOW_S = 300.0
LOCKOUT_S = 60.0
# failed attempts per reviewer name, for this process: guesses are slowed across sessions
_failures: dict[str, list[float]] = {}
_failures_lock = threading.Lock()


def _locked_for(name: str, now: float) -> float:
    with _failures_lock:
        recent = [t for t in _failures.get(name, []) if now - t < WINDOW_S]
        _failures[name] = recent
    if len(recent) >= MAX_FAILURES:
        return max(0.0, recent[-1] + LOCKOUT_S - now)
    return 0.0


def _failed(name: str, now: float) -> None:
    with _failures_lock:
        _failures.setdefault(name, []).append(now)


def reset_failures() -> None:
    """Forget failed sign-in attempts (tests)."""
    with _failures_lock:
        _failures.clear()


def oidc_settings() -> Mapping[str, Any] | None:
    """Return the `[auth]` secrets when OIDC is configured, else None."""
    try:
        section = st.secrets.get("auth")
    except (FileNotFoundError, KeyError, st.errors.StreamlitSecretNotFoundError):
        return None
    return section if isinstance(section, Mapping) and section else None


def _oidc_reviewer(data: ConsoleData) -> Reviewer | None:
    if oidc_settings() is None or not getattr(st.user, "is_logged_in", False):
        return None
    email = str(st.user.get("email") or "").lower()
    try:
        mapping = st.secrets.get("reviewer_emails") or {}
    except (FileNotFoundError, KeyError, st.errors.StreamlitSecretNotFoundError):
        mapping = {}
    name = reviewer_for_email(email, mapping)
    return data.reviewer(name) if name else None


def reviewer_for_email(email: str, mapping: Mapping[str, Any]) -> str | None:
    """Return the reviewer name an identity provider's e-mail maps to (case-insensitive)."""
    wanted = email.strip().lower()
    for key, value in mapping.items():
        if str(key).strip().lower() == wanted and wanted:
            return str(value)
    return None


def current(data: ConsoleData) -> Reviewer | None:
    """Return the signed-in reviewer of this session, or None."""
    name = st.session_state.get(SESSION_KEY)
    if isinstance(name, str):
        reviewer = data.reviewer(name)
        if reviewer is None:  # removed from the reviewers file since signing in
            st.session_state.pop(SESSION_KEY, None)
        return reviewer
    return _oidc_reviewer(data)


def _submit(data: ConsoleData) -> None:
    name = str(st.session_state.get("signin_name") or "").strip().lower()
    password = str(st.session_state.get("signin_password") or "")
    st.session_state["signin_password"] = ""
    now = time.monotonic()
    wait = _locked_for(name, now)
    if wait > 0:
        st.session_state["signin_error"] = (f"Too many failed attempts for {name!r}; "
                                            f"try again in {wait:.0f} s.")
        return
    try:
        reviewer = data.authenticate(name, password)
    except ReviewerAuthError:
        _failed(name, now)
        st.session_state["signin_error"] = "Unknown reviewer or wrong password."
        return
    st.session_state.pop("signin_error", None)
    st.session_state[SESSION_KEY] = reviewer.name


def sign_out() -> None:
    """Forget this session's reviewer (and end the OIDC session when there is one)."""
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    if oidc_settings() is not None and getattr(st.user, "is_logged_in", False):
        st.logout()


def sign_in_page(data: ConsoleData) -> None:
    """Show the sign-in form (and the OIDC button when configured); nothing else."""
    st.title("sleuth · reviewer console")
    st.caption("Sign in to see and decide the actions waiting for a person.")
    if data.ctx.reviewers.is_demo:
        st.info("Development demo reviewers are configured (ava, lee, bill, bea, olga, ada; "
                "password demo-<name>). Production refuses them.")
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        _form(data)


def _form(data: ConsoleData) -> None:
    error = st.session_state.get("signin_error")
    if error:
        st.error(error)
    with st.form("signin", clear_on_submit=False):
        st.text_input("Reviewer name", key="signin_name", autocomplete="username")
        st.text_input("Password", type="password", key="signin_password",
                      autocomplete="current-password")
        st.form_submit_button("Sign in", type="primary", key="signin_submit",
                              on_click=_submit, args=(data,))
    if oidc_settings() is not None:
        st.divider()
        if getattr(st.user, "is_logged_in", False):
            st.warning(f"{st.user.get('email')} is not mapped to a reviewer "
                       "([reviewer_emails] in secrets.toml).")
            st.button("Sign out of the identity provider", on_click=st.logout)
        else:
            st.button("Sign in with single sign-on", key="signin_oidc", on_click=st.login)
