"""The console's page logic through Streamlit's AppTest: sign-in, roles and decisions."""

from __future__ import annotations

import asyncio

from streamlit.testing.v1 import AppTest

from governance.approvals_store import ApprovalStatus
from tests.ui.conftest import Seeded

REFUND = ("pub-01-double-charge", "issue_refund")
REPLY_06 = ("pub-06-card-declined", "send_customer_reply")
REPLY_01 = ("pub-01-double-charge", "send_customer_reply")


def texts(at: AppTest) -> str:
    """Return every piece of text the page shows, joined."""
    parts: list[str] = []
    for kind in ("title", "subheader", "markdown", "caption", "code", "info", "success",
                 "warning", "error", "text"):
        parts += [str(e.value) for e in at.get(kind)]
    return "\n".join(parts)


def button_keys(at: AppTest) -> set[str]:
    """Return the keys of every button on the page."""
    return {str(b.key) for b in at.button if b.key}


def sign_in(at: AppTest, name: str, password: str) -> AppTest:
    """Fill the sign-in form and submit it."""
    at.text_input(key="signin_name").input(name)
    at.text_input(key="signin_password").input(password)
    return at.button(key="signin_submit").click().run()


def test_no_session_shows_the_sign_in_form_and_no_data(seeded: Seeded) -> None:
    at = seeded.app()
    assert not at.exception
    assert [t.value for t in at.title] == ["sleuth · reviewer console"]
    assert {b.key for b in at.button} == {"signin_submit"}
    shown = texts(at)
    assert "Two payments" not in shown and "issue_refund" not in shown
    assert not at.dataframe and not at.sidebar.radio


def test_a_wrong_password_is_refused_and_the_right_one_signs_in(seeded: Seeded) -> None:
    at = sign_in(seeded.app(), "ava", "demo-lee")
    assert [e.value for e in at.error] == ["Unknown reviewer or wrong password."]
    assert "Approval queue" not in [t.value for t in at.title]
    assert not at.dataframe
    at = sign_in(at, "ava", "demo-ava")
    assert not at.error
    assert [t.value for t in at.title] == ["Approval queue"]
    assert "Signed in as **ava**" in at.sidebar.markdown[0].value


def test_repeated_failures_lock_the_name_for_a_while(seeded: Seeded) -> None:
    at = seeded.app()
    for _ in range(5):
        at = sign_in(at, "olga", "guess")
    at = sign_in(at, "olga", "demo-olga")  # right, but locked out
    assert "Too many failed attempts" in at.error[0].value
    assert "Approval queue" not in [t.value for t in at.title]


def test_a_role_without_financial_rights_gets_no_buttons_on_a_refund(seeded: Seeded) -> None:
    refund = seeded.approval(*REFUND)
    at = seeded.app("ava")  # support_agent
    assert f"approve-{refund.id}" not in button_keys(at)  # not even listed by default
    assert f"#{refund.id} · issue_refund" not in [s.value for s in at.subheader]
    at.toggle(key="queue_everything").set_value(True).run()
    assert f"#{refund.id} · issue_refund" in [s.value for s in at.subheader]
    assert f"approve-{refund.id}" not in button_keys(at)
    assert f"reject-{refund.id}" not in button_keys(at)
    assert any("your role (support_agent) may not decide financial actions" in i.value
               for i in at.info)


def test_approving_a_reply_settles_it_and_enqueues_the_resume(seeded: Seeded) -> None:
    reply = seeded.approval(*REPLY_06)
    at = seeded.app("ava")
    before = asyncio.run(seeded.ctx.queue.depth())
    at.button(key=f"approve-{reply.id}").click().run()
    assert not at.exception
    assert "Approved: send_customer_reply" in at.success[0].value
    stored = seeded.ctx.approvals.get(reply.id or 0)
    assert stored.status == ApprovalStatus.APPROVED.value and stored.edited_text is None
    assert [(d.reviewer, d.decision) for d in seeded.ctx.approvals.decisions(reply.id or 0)] \
        == [("ava", "approve")]
    assert asyncio.run(seeded.ctx.queue.depth()) == before + 1  # the resume job
    assert f"approve-{reply.id}" not in button_keys(at)  # gone from the queue


def test_rejecting_a_refund_needs_a_reason(seeded: Seeded) -> None:
    refund = seeded.approval(*REFUND)
    at = seeded.app("bill")
    at.button(key=f"reject-{refund.id}").click().run()
    assert at.error[0].value == "A rejection needs a reason."
    assert seeded.ctx.approvals.get(refund.id or 0).status == ApprovalStatus.PENDING.value
    at.text_input(key=f"reason-{refund.id}").input("the second charge was refunded by hand")
    at.button(key=f"reject-{refund.id}").click().run()
    assert "Rejected: issue_refund" in at.success[0].value
    stored = seeded.ctx.approvals.get(refund.id or 0)
    assert stored.status == ApprovalStatus.REJECTED.value
    [decision] = seeded.ctx.approvals.decisions(refund.id or 0)
    assert (decision.reviewer, decision.reason) == ("bill",
                                                    "the second charge was refunded by hand")


def test_edit_then_approve_sends_the_edited_reply(seeded: Seeded) -> None:
    reply = seeded.approval(*REPLY_01)
    at = seeded.app("lee")
    box = at.text_area(key=f"edit-{reply.id}")
    assert box.value == reply.draft_text
    edited = (reply.draft_text or "") + "\nP.S. The refund reference is RF-1."
    box.input(edited)
    at.button(key=f"approve-{reply.id}").click().run()
    assert "Approved with your edits" in at.success[0].value
    stored = seeded.ctx.approvals.get(reply.id or 0)
    assert stored.status == ApprovalStatus.APPROVED.value
    assert stored.edited_text == edited and stored.final_text == edited


def test_a_financial_approval_needs_the_amount_confirmed(seeded: Seeded) -> None:
    refund = seeded.approval(*REFUND)
    at = seeded.app("bill")
    shown = texts(at)
    assert "499.00 USD" in shown  # the amount comes from the charge the refund names
    at.text_input(key=f"reason-{refund.id}").input("duplicate charge confirmed in Stripe")
    at.button(key=f"approve-{refund.id}").click().run()
    assert "Tick the confirmation of the amount" in at.error[0].value
    assert seeded.ctx.approvals.decisions(refund.id or 0) == []
    at.checkbox(key=f"confirm-{refund.id}").check()
    at.button(key=f"approve-{refund.id}").click().run()
    assert "someone else must approve it too" in at.success[0].value
    assert seeded.ctx.approvals.get(refund.id or 0).status == ApprovalStatus.PENDING.value


def _approve_refund(at: AppTest, request_id: int, reason: str) -> AppTest:
    at.text_input(key=f"reason-{request_id}").input(reason)
    at.checkbox(key=f"confirm-{request_id}").check()
    return at.button(key=f"approve-{request_id}").click().run()


def test_a_two_approver_action_shows_who_approved_first(seeded: Seeded) -> None:
    refund = seeded.approval(*REFUND)
    rid = refund.id or 0
    bill = _approve_refund(seeded.app("bill"), rid, "duplicate charge")
    assert f"approve-{rid}" not in button_keys(bill)  # bill's part is done
    bill.toggle(key="queue_everything").set_value(True).run()
    assert any("you already approved it" in i.value for i in bill.info)
    bea = seeded.app("bea")
    first = [i.value for i in bea.info if i.value.startswith("Approved first by")]
    assert len(first) == 1 and "bill (billing_admin)" in first[0]
    assert "duplicate charge" in first[0]
    bea = _approve_refund(bea, rid, "agreed: two charges for one invoice")
    assert "Approved: issue_refund" in bea.success[0].value
    assert seeded.ctx.approvals.get(rid).status == ApprovalStatus.APPROVED.value
    assert [d.reviewer for d in seeded.ctx.approvals.decisions(rid)] == ["bill", "bea"]


def test_redacted_roles_see_placeholders_not_the_customer(seeded: Seeded) -> None:
    escalation = seeded.approval("pub-10-bad-release", "escalate_to_oncall")
    olga = seeded.app("olga")  # oncall_engineer: decides escalations, sees no customer data
    assert f"approve-{escalation.id}" in button_keys(olga)
    shown = texts(olga)
    assert "<PERSON_1>" in shown and "Fatima" not in shown
    assert "fatima.haddou@inkwellpress.com" not in shown
    lee = seeded.app("lee")  # support_lead writes to customers: originals
    assert "Fatima Haddou" in texts(lee)
