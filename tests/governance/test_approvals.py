"""Reviewers, the approval store and service, and `sleuth approvals`."""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine
from sqlmodel import create_engine
from typer.testing import CliRunner

import governance.approvals as approvals_module
from core.errors import AuthError, ConfigurationError, InvalidRequestError, SleuthError
from governance.approvals import ApprovalService, idempotency_key
from governance.approvals_store import (
    ApprovalConflictError,
    ApprovalEditNotAllowedError,
    ApprovalExpiredError,
    ApprovalMismatchError,
    ApprovalNotFoundError,
    ApprovalNotNeededError,
    ApprovalNotPendingError,
    ApprovalReasonRequiredError,
    ApprovalRequest,
    ApproverRoleError,
    DuplicateApproverError,
    create_tables,
)
from governance.db import make_engine
from governance.policy import decide
from governance.reviewers import (
    DEMO_FILE,
    Reviewer,
    ReviewerAuthError,
    Reviewers,
    hash_password,
    verify_password,
)
from governance.taxonomy import ROLES, load_active
from service.commands.approvals_cmd import app

TAXONOMY = load_active()
CHEAP = {"n": 16, "r": 1, "p": 1}  # fast hashes for tests; production uses the defaults
PEOPLE = {"ava": "support_agent", "lee": "support_lead", "bill": "billing_admin",
          "bea": "billing_admin", "olga": "oncall_engineer", "ada": "admin"}
REVIEWERS = Reviewers(Reviewer(name=n, role=r, password_hash=hash_password(f"pw-{n}", **CHEAP))
                      for n, r in PEOPLE.items())
R = {n: REVIEWERS.authenticate(n, f"pw-{n}") for n in PEOPLE}
REPLY = {"type": "send_customer_reply", "reason": "tell them", "params": {}}


def refund(amount: int | None = 50_000) -> dict[str, Any]:
    return {"type": "issue_refund", "reason": "double charge",
            "params": {} if amount is None else {"amount": amount, "charge": "ch_1"}}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 9, 14, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'approvals.db'}")
    create_tables(engine)
    return engine


@pytest.fixture
def resolved() -> list[ApprovalRequest]:
    return []


@pytest.fixture
def service(engine: Engine, clock: Clock, resolved: list[ApprovalRequest]) -> ApprovalService:
    return ApprovalService(engine, TAXONOMY, clock=clock, expiry=timedelta(hours=2),
                           on_resolved=resolved.append)


def ask(service: ApprovalService, action: dict[str, Any], index: int = 0,
        investigation: str = "inv-1", draft: str | None = None) -> ApprovalRequest:
    return service.request(investigation, index, action, decide(action, TAXONOMY),
                           draft_text=draft)


# --- reviewers -------------------------------------------------------------------------

def test_password_hashes_are_salted_scrypt_and_verify() -> None:
    one, two = hash_password("s3cret", **CHEAP), hash_password("s3cret", **CHEAP)
    assert one.startswith("scrypt$16$1$1$") and len(one.split("$")) == 6
    assert one != two  # random salt
    assert verify_password("s3cret", one) and not verify_password("s3creT", one)
    assert not verify_password("s3cret", "scrypt$nonsense")
    assert hash_password("x").startswith("scrypt$16384$8$1$")


def test_authenticate_refuses_unknown_names_and_wrong_passwords_alike() -> None:
    with pytest.raises(ReviewerAuthError) as wrong:
        REVIEWERS.authenticate("ava", "pw-lee")
    with pytest.raises(ReviewerAuthError) as unknown:
        REVIEWERS.authenticate("mallory", "pw-ava")
    assert wrong.value.message == unknown.value.message
    assert isinstance(wrong.value, AuthError) and wrong.value.code == "reviewer_auth_failed"
    assert "pw-" not in repr(R["ava"])  # the hash never shows in logs


def test_the_demo_file_is_marked_and_covers_every_role() -> None:
    demo = Reviewers.demo()
    assert demo.is_demo
    assert {r.role for r in demo} == set(ROLES)
    assert demo.authenticate("bill", "demo-bill").role == "billing_admin"


def test_broken_reviewer_files_are_configuration_errors(tmp_path: Path) -> None:
    good = hash_password("x", **CHEAP)
    cases = {
        "dup": {"reviewers": [{"name": "a", "role": "admin", "password_hash": good}] * 2},
        "role": {"reviewers": [{"name": "a", "role": "cfo", "password_hash": good}]},
        "hash": {"reviewers": [{"name": "a", "role": "admin", "password_hash": "plain"}]},
    }
    for name, body in cases.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(body))
        with pytest.raises(ConfigurationError):
            Reviewers.from_file(path)
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump({"reviewers": [{"name": "a", "role": "admin",
                                                 "password_hash": good}]}))
    assert not Reviewers.from_file(ok).is_demo


# --- requests --------------------------------------------------------------------------

def test_request_is_stored_once_per_investigation_and_index(service: ApprovalService) -> None:
    first = ask(service, REPLY, draft="Hello Dana")
    again = ask(service, REPLY, draft="something else")
    assert first.id == again.id and again.draft_text == "Hello Dana"
    assert first.idempotency_key == idempotency_key("inv-1", 0, "send_customer_reply")
    assert (first.status, first.level, first.approvals_required) == \
        ("pending", "customer_visible", 1)
    assert first.expires_at - first.created_at == timedelta(hours=2)
    assert len(service.list()) == 1
    with pytest.raises(ApprovalMismatchError):
        ask(service, refund())


def test_actions_that_run_or_are_refused_are_not_queued(service: ApprovalService) -> None:
    for action in ({"type": "tag_ticket", "params": {}}, {"type": "drop_db", "params": {}},
                   refund(10**9)):
        with pytest.raises(ApprovalNotNeededError):
            ask(service, action)
    assert service.list() == []


def test_the_stored_decision_comes_from_the_taxonomy_not_the_caller(
        service: ApprovalService) -> None:
    weak = decide(refund(100), TAXONOMY).model_copy(update={"approvals_required": 0})
    row = service.request("inv-1", 0, refund(50_000), weak)
    assert row.approvals_required == 2 and row.reason_required
    assert row.approver_roles == ["billing_admin", "admin"]
    assert row.amount == 50_000 and row.params["charge"] == "ch_1"


# --- decisions -------------------------------------------------------------------------

def test_a_reply_is_approved_once_with_the_edited_text(
        service: ApprovalService, resolved: list[ApprovalRequest]) -> None:
    row = ask(service, REPLY, draft="Hi, draft")
    done = service.decide(row.id or 0, R["ava"], "approve", edited_text="Hi, better")
    assert done.status == "approved" and done.resolved_at is not None
    assert done.final_text == "Hi, better" and done.draft_text == "Hi, draft"
    assert [r.id for r in resolved] == [row.id]
    [decision] = service.decisions(row.id or 0)
    assert (decision.reviewer, decision.role, decision.decision, decision.edited_text) == \
        ("ava", "support_agent", "approve", "Hi, better")
    with pytest.raises(ApprovalNotPendingError):
        service.decide(row.id or 0, R["lee"], "reject", reason="late")
    assert len(resolved) == 1


def test_edited_text_is_only_for_approving_replies(service: ApprovalService) -> None:
    reply, bug = ask(service, REPLY), ask(service, {"type": "create_bug_report"}, index=1)
    with pytest.raises(ApprovalEditNotAllowedError):
        service.decide(bug.id or 0, R["lee"], "approve", edited_text="x")
    with pytest.raises(ApprovalEditNotAllowedError):
        service.decide(reply.id or 0, R["ava"], "reject", reason="no", edited_text="x")
    with pytest.raises(ApprovalEditNotAllowedError):
        service.decide(reply.id or 0, R["ava"], "approve", edited_text="  ")
    assert service.decisions(reply.id or 0) == []


def test_reviewers_need_the_role_for_the_level(service: ApprovalService) -> None:
    money, reply = ask(service, refund(500)), ask(service, REPLY, index=1)
    page = ask(service, {"type": "escalate_to_oncall"}, index=2)
    for who, row in (("ava", money), ("lee", money), ("olga", reply), ("ava", page)):
        with pytest.raises(ApproverRoleError) as info:
            service.decide(row.id or 0, R[who], "approve", reason="because")
        assert isinstance(info.value, AuthError)
    assert service.decide(page.id or 0, R["olga"], "approve").status == "approved"
    assert service.decide(money.id or 0, R["ada"], "approve", reason="ok").status == "approved"


def test_financial_decisions_and_rejections_need_a_reason(service: ApprovalService) -> None:
    money, reply = ask(service, refund(500)), ask(service, REPLY, index=1)
    for reason in (None, "", "   "):
        with pytest.raises(ApprovalReasonRequiredError):
            service.decide(money.id or 0, R["bill"], "approve", reason=reason)
        with pytest.raises(ApprovalReasonRequiredError):
            service.decide(reply.id or 0, R["ava"], "reject", reason=reason)
    assert service.decide(reply.id or 0, R["ava"], "approve").status == "approved"
    done = service.decide(money.id or 0, R["bill"], "approve", reason="  duplicate charge ")
    assert done.status == "approved"
    assert service.decisions(money.id or 0)[0].reason == "duplicate charge"


def test_large_refunds_need_two_different_approvers(
        service: ApprovalService, resolved: list[ApprovalRequest]) -> None:
    row = ask(service, refund(50_000))
    half = service.decide(row.id or 0, R["bill"], "approve", reason="charged twice")
    assert half.status == "pending" and resolved == []
    with pytest.raises(DuplicateApproverError):
        service.decide(row.id or 0, R["bill"], "approve", reason="really")
    done = service.decide(row.id or 0, R["bea"], "approve", reason="confirmed in Stripe")
    assert done.status == "approved"
    assert [d.reviewer for d in service.decisions(row.id or 0)] == ["bill", "bea"]
    assert len(resolved) == 1 and resolved[0].status == "approved"


def test_a_refund_without_an_amount_needs_two_approvers(service: ApprovalService) -> None:
    row = ask(service, refund(None))
    assert row.approvals_required == 2 and row.amount is None
    assert service.decide(row.id or 0, R["ada"], "approve", reason="r").status == "pending"


def test_the_first_rejection_rejects(service: ApprovalService,
                                     resolved: list[ApprovalRequest]) -> None:
    row = ask(service, refund(50_000))
    service.decide(row.id or 0, R["bill"], "approve", reason="looks right")
    done = service.decide(row.id or 0, R["ada"], "reject", reason="already refunded")
    assert done.status == "rejected"
    assert [r.status for r in resolved] == ["rejected"]
    with pytest.raises(ApprovalNotPendingError):
        service.decide(row.id or 0, R["bea"], "approve", reason="x")


def test_unknown_ids_and_statuses(service: ApprovalService) -> None:
    with pytest.raises(ApprovalNotFoundError):
        service.get(404)
    with pytest.raises(ApprovalNotFoundError):
        service.decide(404, R["ada"], "approve", reason="x")
    with pytest.raises(InvalidRequestError, match="maybe"):
        service.list(status="maybe")
    with pytest.raises(SleuthError):
        service.decide(ask(service, REPLY).id or 0, R["ava"], "perhaps")  # type: ignore[arg-type]


def test_list_filters_by_status_and_investigation(service: ApprovalService) -> None:
    a = ask(service, REPLY, investigation="inv-a")
    ask(service, REPLY, investigation="inv-b")
    service.decide(a.id or 0, R["lee"], "approve")
    assert [r.investigation_id for r in service.list(status="pending")] == ["inv-b"]
    assert [r.id for r in service.list(investigation_id="inv-a")] == [a.id]


# --- expiry and escalation ---------------------------------------------------------------

def test_overdue_requests_are_refused_then_expired_and_escalated(
        engine: Engine, clock: Clock) -> None:
    escalated: list[ApprovalRequest] = []
    service = ApprovalService(engine, TAXONOMY, clock=clock, expiry=timedelta(minutes=30),
                              on_escalate=escalated.append)
    late, fresh = ask(service, REPLY), ask(service, REPLY, index=1)
    clock.now += timedelta(minutes=20)
    fresh = ask(service, REPLY, index=2)  # created later, not yet due
    clock.now += timedelta(minutes=10)
    with pytest.raises(ApprovalExpiredError):
        service.decide(late.id or 0, R["ava"], "approve")
    done = service.expire_due()
    assert sorted(r.id or 0 for r in done) == [1, 2]
    assert {r.status for r in done} == {"escalated"}
    assert all(r.resolved_at == clock.now and r.escalated_at == clock.now for r in done)
    assert [r.id for r in escalated] == [1, 2]
    assert service.get(fresh.id or 0).status == "pending"
    assert service.expire_due() == []  # escalated once only
    with pytest.raises(ApprovalNotPendingError):
        service.decide(late.id or 0, R["ava"], "approve")


def test_a_failed_escalation_hook_is_retried(engine: Engine, clock: Clock) -> None:
    calls: list[int] = []

    def flaky(row: ApprovalRequest) -> None:
        calls.append(row.id or 0)
        if len(calls) == 1:
            raise RuntimeError("pager down")

    service = ApprovalService(engine, TAXONOMY, clock=clock, on_escalate=flaky)
    row = ask(service, {"type": "escalate_to_oncall"})
    clock.now += timedelta(days=1)
    assert service.expire_due() == []
    assert service.get(row.id or 0).status == "expired"
    assert [r.status for r in service.expire_due()] == ["escalated"]
    assert calls == [row.id, row.id]


# --- concurrency -------------------------------------------------------------------------

def race(*calls: Callable[[], ApprovalRequest]) -> list[ApprovalRequest | SleuthError]:
    """Run the calls at the same moment; return each one's result or typed error."""
    barrier = threading.Barrier(len(calls))
    results: list[ApprovalRequest | SleuthError] = [None] * len(calls)  # type: ignore[list-item]

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except SleuthError as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def check_single_outcome(service: ApprovalService, resolved: list[ApprovalRequest],
                         investigation: str) -> None:
    for _ in range(5):
        row = ask(service, REPLY, investigation=investigation)
        rid = row.id or 0
        before = len(resolved)
        results = race(functools.partial(service.decide, rid, R["ava"], "approve"),
                       functools.partial(service.decide, rid, R["lee"], "reject", reason="no"))
        wins = [r for r in results if isinstance(r, ApprovalRequest)]
        assert len(wins) == 1, results
        assert all(isinstance(r, ApprovalNotPendingError | ApprovalConflictError)
                   for r in results if not isinstance(r, ApprovalRequest))
        assert len(service.decisions(rid)) == 1
        assert service.get(rid).status == wins[0].status
        assert len(resolved) == before + 1
        investigation += "+"


def test_concurrent_decisions_have_one_outcome_on_sqlite(
        service: ApprovalService, resolved: list[ApprovalRequest]) -> None:
    check_single_outcome(service, resolved, "inv-race")


def test_a_stale_writer_is_refused_by_the_version_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a plain engine: no BEGIN IMMEDIATE, so only the version column can stop the race
    engine = create_engine(f"sqlite:///{tmp_path / 'plain.db'}")
    create_tables(engine)
    service = ApprovalService(engine, TAXONOMY)
    row = ask(service, REPLY)
    real_check = approvals_module._check

    def meanwhile(*args: Any) -> None:
        real_check(*args)
        monkeypatch.setattr(approvals_module, "_check", real_check)
        service.decide(row.id or 0, R["lee"], "approve")  # lands between read and write

    monkeypatch.setattr(approvals_module, "_check", meanwhile)
    with pytest.raises(ApprovalConflictError):
        service.decide(row.id or 0, R["ava"], "reject", reason="no")
    assert [d.reviewer for d in service.decisions(row.id or 0)] == ["lee"]
    assert service.get(row.id or 0).status == "approved"


@pytest.fixture
def pg_service(postgres_url: str, resolved: list[ApprovalRequest]) -> Iterator[ApprovalService]:
    engine = make_engine(postgres_url)
    create_tables(engine)
    yield ApprovalService(engine, TAXONOMY, on_resolved=resolved.append)
    engine.dispose()


@pytest.mark.postgres
def test_concurrent_decisions_have_one_outcome_on_postgres(
        pg_service: ApprovalService, resolved: list[ApprovalRequest]) -> None:
    check_single_outcome(pg_service, resolved, f"inv-{uuid.uuid4().hex}")


@pytest.mark.postgres
def test_three_concurrent_approvers_of_a_two_approver_refund(
        pg_service: ApprovalService, resolved: list[ApprovalRequest]) -> None:
    row = ask(pg_service, refund(50_000), investigation=f"inv-{uuid.uuid4().hex}")
    rid = row.id or 0
    results = race(*(functools.partial(pg_service.decide, rid, R[who], "approve", reason="ok")
                     for who in ("bill", "bea", "ada")))
    wins = [r for r in results if isinstance(r, ApprovalRequest)]
    assert sorted(r.status for r in wins) == ["approved", "pending"], results
    assert sum(isinstance(r, ApprovalNotPendingError) for r in results) == 1
    assert pg_service.get(rid).status == "approved"
    assert len(pg_service.decisions(rid)) == 2
    assert [r.id for r in resolved] == [rid]


# --- CLI ---------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    people = tmp_path / "reviewers.yaml"
    people.write_text(yaml.safe_dump({"reviewers": [
        {"name": n, "role": r, "password_hash": hash_password(f"pw-{n}", **CHEAP)}
        for n, r in PEOPLE.items()]}))
    return {"SLEUTH_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "SLEUTH_GOVERNANCE__REVIEWERS_FILE": str(people), "COLUMNS": "200"}


def _cli_service(env: dict[str, str]) -> ApprovalService:
    engine = make_engine(env["SLEUTH_DATABASE_URL"])
    create_tables(engine)
    return ApprovalService(engine, TAXONOMY)


def test_cli_lists_shows_approves_and_rejects(cli_env: dict[str, str], tmp_path: Path) -> None:
    service = _cli_service(cli_env)
    reply = ask(service, REPLY, draft="Dear Dana, your card was declined.")
    money = ask(service, refund(50_000), index=1)
    result = runner.invoke(app, ["list"], env=cli_env)
    assert result.exit_code == 0, result.output
    assert "send_customer_reply" in result.output and "issue_refund" in result.output
    assert "0/2" in result.output

    result = runner.invoke(app, ["show", str(reply.id)], env=cli_env)
    assert result.exit_code == 0, result.output
    assert "Dear Dana" in result.output and "customer_visible" in result.output

    edit = tmp_path / "reply.txt"
    edit.write_text("Dear Dana, please update your card.")
    result = runner.invoke(app, ["approve", str(reply.id), "--as", "ava", "--edit-file",
                                 str(edit)], env={**cli_env, "SLEUTH_REVIEWER_PASSWORD": "pw-ava"})
    assert result.exit_code == 0, result.output
    assert "approved" in result.output
    assert service.get(reply.id or 0).final_text == "Dear Dana, please update your card."

    # the password can also be typed at a hidden prompt
    result = runner.invoke(app, ["approve", str(money.id), "--as", "bill", "--reason", "dup"],
                           env=cli_env, input="pw-bill\n")
    assert result.exit_code == 0, result.output
    assert "1 of 2" in result.output
    result = runner.invoke(app, ["reject", str(money.id), "--as", "ada", "--reason", "refunded"],
                           env={**cli_env, "SLEUTH_REVIEWER_PASSWORD": "pw-ada"})
    assert result.exit_code == 0, result.output
    assert service.get(money.id or 0).status == "rejected"

    result = runner.invoke(app, ["list", "--status", "rejected"], env=cli_env)
    assert "issue_refund" in result.output and "send_customer_reply" not in result.output
    result = runner.invoke(app, ["show", str(money.id)], env=cli_env)
    assert "bill (billing_admin) approve: dup" in result.output
    assert "ada (admin) reject: refunded" in result.output


def test_cli_refusals_have_codes_and_exit_statuses(cli_env: dict[str, str]) -> None:
    service = _cli_service(cli_env)
    money = ask(service, refund(500))
    cases = [
        (["approve", str(money.id), "--as", "bill"], "pw-wrong", 3, "reviewer_auth_failed"),
        (["approve", str(money.id), "--as", "ava", "--reason", "x"], "pw-ava", 3,
         "approval_role_denied"),
        (["approve", str(money.id), "--as", "bill"], "pw-bill", 2, "approval_reason_required"),
        (["approve", "999", "--as", "bill", "--reason", "x"], "pw-bill", 2,
         "approval_not_found"),
        (["show", "999"], "", 2, "approval_not_found"),
    ]
    for args, password, code, text in cases:
        result = runner.invoke(app, args, env={**cli_env, "SLEUTH_REVIEWER_PASSWORD": password})
        assert result.exit_code == code, (args, result.output)
        assert text in result.output
    result = runner.invoke(app, ["reject", str(money.id), "--as", "bill"], env=cli_env)
    assert result.exit_code == 2  # --reason is required
    assert service.get(money.id or 0).status == "pending"


def test_cli_production_refuses_the_demo_reviewers(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "SLEUTH_PROFILE": "production",
           "SLEUTH_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
           "SLEUTH_LLM__TIERS": '[{"name": "rules", "kind": "rules"}]',
           "SLEUTH_REVIEWER_PASSWORD": "demo-ada"}
    for reviewers in (str(DEMO_FILE), None):
        run_env = {**env, "SLEUTH_GOVERNANCE__REVIEWERS_FILE": reviewers} if reviewers else {
            k: v for k, v in env.items() if k != "SLEUTH_GOVERNANCE__REVIEWERS_FILE"}
        result = runner.invoke(app, ["approve", "1", "--as", "ada", "--reason", "x"],
                               env=run_env)
        assert result.exit_code == 2, result.output
        assert "configuration_invalid" in result.output and "demo" in result.output
