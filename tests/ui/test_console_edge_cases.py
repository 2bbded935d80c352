"""Edge cases of deciding in the console: expiry, two reviewers at once, missing evidence."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from governance.approvals_store import ApprovalStatus
from governance.reviewers import Reviewers
from tests.ui.conftest import Seeded
from tests.ui.test_console_pages import REFUND, REPLY_06, button_keys, texts
from ui.fixtures import add_approvals


def test_an_expired_approval_is_shown_expired_and_cannot_be_decided(seeded: Seeded) -> None:
    inv = seeded.investigations["pub-06-card-declined"]
    expiry = seeded.ctx.approvals.expiry
    # requested so long ago that its time ran out a minute ago
    [old] = add_approvals(seeded.ctx.approvals, [inv], 1,
                          clock=datetime.now(UTC) - expiry - timedelta(minutes=1))
    at = seeded.app("ava")
    assert f"#{old.id} · send_customer_reply" not in [s.value for s in at.subheader]
    at.toggle(key="queue_everything").set_value(True).run()
    # expired ones sort last: six pending, five a page, so it is alone on page 2
    at.number_input(key="queue_page").set_value(2).run()
    assert [s.value for s in at.subheader] == [f"#{old.id} · send_customer_reply"]
    assert f"approve-{old.id}" not in button_keys(at)
    assert any("it has expired" in i.value for i in at.info)
    assert ":gray-badge[expired]" in texts(at)
    assert seeded.ctx.approvals.decisions(old.id or 0) == []


def test_an_approval_that_expires_while_on_screen_is_refused_clearly(seeded: Seeded) -> None:
    inv = seeded.investigations["pub-06-card-declined"]
    expiry = seeded.ctx.approvals.expiry
    # expires two seconds after it is requested
    [soon] = add_approvals(seeded.ctx.approvals, [inv], 1,
                           clock=datetime.now(UTC) - expiry + timedelta(seconds=2))
    at = seeded.app("ava")
    assert f"approve-{soon.id}" in button_keys(at)
    time.sleep(max(0.0, (soon.expires_at - datetime.now(UTC)).total_seconds()) + 0.2)
    at.button(key=f"approve-{soon.id}").click().run()
    assert not at.exception
    assert f"Approval {soon.id} expired at" in at.warning[0].value
    assert "Nothing was changed" in at.warning[0].value
    assert seeded.ctx.approvals.get(soon.id or 0).status == ApprovalStatus.PENDING.value
    assert seeded.ctx.approvals.decisions(soon.id or 0) == []


def test_two_reviewers_deciding_at_once_get_one_outcome(seeded: Seeded) -> None:
    reply = seeded.approval(*REPLY_06)
    ava, lee = seeded.app("ava"), seeded.app("lee")  # both see it pending
    lee.button(key=f"approve-{reply.id}").click().run()
    assert "Approved: send_customer_reply" in lee.success[0].value
    ava.text_input(key=f"reason-{reply.id}").input("wrong customer")
    ava.button(key=f"reject-{reply.id}").click().run()
    assert not ava.exception
    warning = ava.warning[0].value
    assert f"Approval {reply.id} is no longer pending" in warning
    assert "lee (support_lead) approved" in warning and "Nothing was changed" in warning
    assert seeded.ctx.approvals.get(reply.id or 0).status == ApprovalStatus.APPROVED.value
    assert [d.reviewer for d in seeded.ctx.approvals.decisions(reply.id or 0)] == ["lee"]


def test_a_change_under_the_reviewer_is_shown_before_anything_is_decided(
        seeded: Seeded) -> None:
    refund = seeded.approval(*REFUND)
    rid = refund.id or 0
    bill = seeded.app("bill")
    bea = Reviewers.demo().get("bea")
    assert bea is not None
    seeded.ctx.approvals.decide(rid, bea, "approve", reason="duplicate")  # first of two
    bill.text_input(key=f"reason-{rid}").input("duplicate")
    bill.checkbox(key=f"confirm-{rid}").check()
    bill.button(key=f"approve-{rid}").click().run()
    assert "changed while you were looking at it" in bill.warning[0].value
    assert [d.reviewer for d in seeded.ctx.approvals.decisions(rid)] == ["bea"]
    assert any(i.value.startswith("Approved first by bea") for i in bill.info)


def test_missing_and_degraded_evidence_get_a_clear_placeholder(seeded: Seeded) -> None:
    inv = seeded.investigations["pub-06-card-declined"]
    row = seeded.ctx.store.get(inv)
    record = row.record_dict() or {}
    record["diagnosis"]["cited"] += [{"source": "linear", "ref": "GW-9999"},
                                     {"source": "github", "ref": "1728248498"}]
    record["calls"].append({"source": "github", "operation": "deployments", "params": {},
                            "ok": False, "evidence": 0, "duration_ms": 20000.0, "attempts": 3,
                            "error": {"kind": "timed_out", "code": "timeout",
                                      "message": "no answer in 20 s"}})
    record["evidence"] = [e for e in record["evidence"] if e["source"] != "github"]
    record["degraded_sources"] = ["github"]
    # a worker's run: only a running investigation can finish (still paused for approval)
    assert seeded.ctx.store.start(inv, "test")
    assert seeded.ctx.store.finish(inv, record)
    at = seeded.app("ava")
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert any("linear:GW-9999 — evidence unavailable: cited, but not among the evidence"
               in w for w in warnings)
    assert any("github:1728248498 — evidence unavailable: github was degraded" in w
               and "timed_out: timeout" in w for w in warnings)
