"""The reviewer console: `sleuth console`, or `streamlit run ui/app.py`.

Nothing is shown before a reviewer signs in. The views read and act through
`ui.data.ConsoleData`, the same Python API the CLI and the HTTP service use.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from core.errors import ConfigurationError
from governance.reviewers import Reviewer
from ui import auth, runtime
from ui.data import ConsoleData
from ui.views import investigation, operations, playbooks, queue
from ui.views.common import show_flash

View = Callable[[ConsoleData, Reviewer], None]
VIEWS: dict[str, View] = {
    "Approval queue": queue.render,
    "Investigation": investigation.render,
    "Operations": operations.render,
    "Playbooks": playbooks.render,
}


def main() -> None:
    """Sign the reviewer in, then draw the chosen view."""
    st.set_page_config(page_title="sleuth · reviewer console", page_icon="🔎", layout="wide")
    try:
        data = runtime.console()
    except ConfigurationError as exc:
        st.error(f"The console cannot start: {exc.message}")
        st.stop()
    reviewer = auth.current(data)
    if reviewer is None:
        auth.sign_in_page(data)
        return
    with st.sidebar:
        st.markdown(f"Signed in as **{reviewer.name}** · `{reviewer.role}`")
        st.caption("customer data: " + ("originals" if data.sees_originals(reviewer)
                                        else "redacted"))
        view = st.radio("View", list(VIEWS), key="view")
        st.button("Sign out", key="signout", on_click=auth.sign_out)
    show_flash()
    VIEWS[view or "Approval queue"](data, reviewer)


main()
