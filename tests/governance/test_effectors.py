"""Effectors against their writable sandboxes: each action acts once, whatever fails when."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from graphql import GraphQLInputObjectType, parse, validate
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from core.domain import ActionType
from core.errors import ConfigurationError
from core.resilience import ResiliencePolicy
from core.settings import ResilienceSettings, RetrySettings, TimeoutSettings
from governance.db import make_engine
from governance.effectors import (
    Effector,
    EffectorAction,
    EffectorSet,
    EffectResult,
    KnownIssueLinker,
    Ledger,
    LedgerUnavailableError,
    LinearEffector,
    PagingEffector,
    StripeEffector,
    ZendeskEffector,
    build_effectors,
    create_ledger_table,
    idempotency_key,
)
from governance.effectors.linear import (
    ISSUE_BY_ID,
    ISSUE_CREATE,
    LinearWriteConfig,
    LinearWriter,
    issue_id_for,
)
from governance.effectors.paging import PagingConfig
from governance.effectors.stripe import StripeWriteConfig
from governance.effectors.zendesk import ZendeskClient, ZendeskConfig, marker_tag
from sandbox.apis import effectors as sbx
from sandbox.apis.linear import linear_schema
from sandbox.cases import load_case
from sandbox.http import LoopbackServer, Status, json_body

CASES = Path(__file__).resolve().parents[2] / "evals" / "cases"
PUB01 = load_case(CASES / "pub-01-double-charge")  # zendesk ticket 58327, duplicate charges
PUB10 = load_case(CASES / "pub-10-bad-release")  # Linear issue GW-677
TICKET = "58327"
CHARGE = "ch_1QTBvdfdHb7WnX3cCoscJFYQ"  # $499.00, not refunded
CUSTOMER = "cus_rKhfHCMe3NAN9R"
FAST = ResilienceSettings(
    timeouts=TimeoutSettings(connect_s=0.5, response_s=2.0, total_budget_s=5.0),
    retry=RetrySettings(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.02, jitter_s=0),
)


E = TypeVar("E", bound=Effector)


class Env:
    """A running sandbox, a ledger on a SQLite file, and effectors pointed at both."""

    def __init__(self, server: LoopbackServer, world: sbx.EffectorSandbox, engine: Engine,
                 db_path: Path) -> None:
        self.server = server
        self.world = world
        self.engine = engine
        self.db_path = db_path
        self.ledger = Ledger(engine)
        self.investigation = f"inv-{uuid.uuid4().hex[:12]}"
        self.made: list[Any] = []

    def policy(self, name: str = "effector:test") -> ResiliencePolicy:
        return ResiliencePolicy(name, FAST)

    def keep(self, effector: E) -> E:
        self.made.append(effector)
        return effector

    def zendesk(self, config: ZendeskConfig | None = None) -> ZendeskEffector:
        return self.keep(ZendeskEffector(config or sbx.zendesk_config(self.server),
                                         policy=self.policy(), ledger=self.ledger))

    def stripe(self, config: StripeWriteConfig | None = None) -> StripeEffector:
        return self.keep(StripeEffector(config or sbx.stripe_write_config(self.server),
                                        policy=self.policy(), ledger=self.ledger))

    def linear(self, config: LinearWriteConfig | None = None) -> LinearEffector:
        return self.keep(LinearEffector(config or sbx.linear_write_config(self.server),
                                        policy=self.policy(), ledger=self.ledger))

    def linker(self) -> KnownIssueLinker:
        return self.keep(KnownIssueLinker(
            LinearWriter(sbx.linear_write_config(self.server)),
            ZendeskClient(sbx.zendesk_config(self.server)), policy=self.policy(),
            ledger=self.ledger))

    def paging(self, config: PagingConfig | None = None) -> PagingEffector:
        return self.keep(PagingEffector(config or sbx.paging_config(self.server),
                                        policy=self.policy(), ledger=self.ledger))

    def action(self, kind: ActionType, index: int = 0, *, params: dict[str, Any] | None = None,
               text: str = "", ticket_id: str | None = TICKET) -> EffectorAction:
        return EffectorAction(investigation_id=self.investigation, index=index, type=kind,
                              params=params or {}, ticket_id=ticket_id, text=text)

    def writes(self, mount: str) -> list[dict[str, Any]]:
        """Return the write requests (not reads) a mount received."""
        return [r for r in self.server.received(mount) if r["method"] in ("PUT", "POST")]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[LoopbackServer, sbx.EffectorSandbox]]:
    """Serve the four writable APIs for the module."""
    world = sbx.EffectorSandbox()
    server = LoopbackServer()
    world.mount(server)
    with server:
        yield server, world


@pytest.fixture
async def env(served: tuple[LoopbackServer, sbx.EffectorSandbox],
              tmp_path: Path) -> AsyncIterator[Env]:
    """Empty the sandbox, seed pub-01's charges and ticket and pub-10's issues, new ledger."""
    server, world = served
    server.clear()
    world.reset()
    world.seed(PUB01.world, PUB01.case.ticket)
    world.linear.seed(PUB10.world)
    db_path = tmp_path / "governance.db"
    engine = make_engine(f"sqlite:///{db_path}")
    create_ledger_table(engine)
    made = Env(server, world, engine, db_path)
    yield made
    for effector in made.made:
        await effector.aclose()
    engine.dispose()


async def run(effector: Any, action: EffectorAction) -> EffectResult:
    result: EffectResult = await effector.execute(action, key=action.key)
    return result


# -- keys -----------------------------------------------------------------------------------


def test_idempotency_key_is_the_briefs_sha256_prefix() -> None:
    expected = hashlib.sha256(b"inv-1:3:issue_refund").hexdigest()[:32]
    assert idempotency_key("inv-1", 3, "issue_refund") == expected
    assert idempotency_key("inv-1", 3, ActionType.ISSUE_REFUND) == expected
    action = EffectorAction(investigation_id="inv-1", index=3, type=ActionType.ISSUE_REFUND)
    assert action.key == expected
    assert idempotency_key("inv-1", 4, "issue_refund") != expected


async def test_a_key_not_derived_from_the_action_is_refused(env: Env) -> None:
    action = env.action(ActionType.ADD_INTERNAL_NOTE, text="note")
    result = await env.zendesk().execute(action, key="0" * 32)
    assert (result.status, result.error_code) == ("failed", "idempotency_key_mismatch")
    assert env.server.received("zendesk") == []


# -- Zendesk --------------------------------------------------------------------------------


async def test_internal_note_is_a_private_comment_with_the_marker_tag(env: Env) -> None:
    action = env.action(ActionType.ADD_INTERNAL_NOTE, text="Two charges for one invoice.")
    result = await run(env.zendesk(), action)
    assert result.status == "executed", result
    assert not result.replayed
    [comment] = env.world.zendesk.comments[TICKET]
    assert (comment["body"], comment["public"]) == ("Two charges for one invoice.", False)
    assert result.external_id == f"ticket/{TICKET}/comment/{comment['id']}"
    [put] = env.writes("zendesk")
    assert put["path"] == f"/zendesk/api/v2/tickets/{TICKET}.json"
    assert put["headers"]["authorization"].startswith("Basic ")
    sent = json_body(put)["ticket"]
    assert sent["comment"] == {"body": "Two charges for one invoice.", "public": False}
    assert sent["additional_tags"] == [marker_tag(action.key)]
    assert sent["safe_update"] is True and sent["updated_stamp"]
    assert marker_tag(action.key) in env.world.zendesk.tickets[TICKET]["tags"]


async def test_reply_tags_and_priority(env: Env) -> None:
    effector = env.zendesk()
    reply = await run(effector, env.action(ActionType.SEND_CUSTOMER_REPLY, 0, text="Refunded."))
    tags = await run(effector, env.action(ActionType.TAG_TICKET, 1,
                                          params={"tags": ["Billing", "duplicate_charge"]}))
    prio = await run(effector, env.action(ActionType.SET_PRIORITY, 2,
                                          params={"priority": "high"}))
    assert [r.status for r in (reply, tags, prio)] == ["executed"] * 3
    ticket = env.world.zendesk.tickets[TICKET]
    assert env.world.zendesk.comments[TICKET][0]["public"] is True
    assert {"billing", "duplicate_charge"} <= set(ticket["tags"])
    assert ticket["priority"] == "high"


@pytest.mark.parametrize(("kind", "params", "text", "ticket"), [
    (ActionType.TAG_TICKET, {"tags": ["sleuth-0000"]}, "", TICKET),   # reserved marker prefix
    (ActionType.TAG_TICKET, {"tags": ["has space"]}, "", TICKET),
    (ActionType.SET_PRIORITY, {"priority": "critical"}, "", TICKET),
    (ActionType.ADD_INTERNAL_NOTE, {}, "   ", TICKET),                 # empty note
    (ActionType.ADD_INTERNAL_NOTE, {"public": True}, "x", TICKET),     # unknown param
    (ActionType.ADD_INTERNAL_NOTE, {}, "x", "../admin"),               # not a ticket id
    (ActionType.ADD_INTERNAL_NOTE, {}, "x", None),
])
async def test_bad_ticket_actions_fail_without_writing(env: Env, kind: ActionType,
                                                       params: dict[str, Any], text: str,
                                                       ticket: str | None) -> None:
    result = await run(env.zendesk(), env.action(kind, params=params, text=text,
                                                 ticket_id=ticket))
    assert (result.status, result.error_code) == ("failed", "invalid_request")
    assert env.writes("zendesk") == []


async def test_zendesk_lost_answer_is_not_written_twice(env: Env) -> None:
    env.world.zendesk.fail_after_apply(503)  # applied, then the answer is an error
    result = await run(env.zendesk(), env.action(ActionType.ADD_INTERNAL_NOTE, text="once"))
    assert (result.status, result.replayed, result.attempts) == ("executed", True, 2)
    assert len(env.world.zendesk.comments[TICKET]) == 1
    assert len(env.writes("zendesk")) == 1  # the retry read the marker and did not write


async def test_a_resume_answers_duplicate_and_sends_nothing(env: Env) -> None:
    action = env.action(ActionType.ADD_INTERNAL_NOTE, text="once")
    first = await run(env.zendesk(), action)
    env.server.clear()
    again = await run(env.zendesk(), action)
    assert again.status == "duplicate"
    assert (again.key, again.external_id) == (first.key, first.external_id)
    assert env.server.received("zendesk") == []
    assert len(env.world.zendesk.comments[TICKET]) == 1


async def test_racing_runs_of_one_action_write_once(env: Env) -> None:
    action = env.action(ActionType.ADD_INTERNAL_NOTE, text="racing")
    results = await asyncio.gather(*(run(env.zendesk(), action) for _ in range(3)))
    assert {r.status for r in results} <= {"executed", "duplicate"}
    assert sum(r.status == "executed" and not r.replayed for r in results) == 1
    assert len(env.world.zendesk.comments[TICKET]) == 1  # the losers got 409, then the marker


async def test_zendesk_typed_failures(env: Env) -> None:
    missing = await run(env.zendesk(), env.action(ActionType.ADD_INTERNAL_NOTE, text="x",
                                                  ticket_id="99999"))
    assert (missing.status, missing.error_code) == ("failed", "not_found")
    bad = sbx.zendesk_config(env.server).model_copy(update={"api_token": SecretStr("nope")})
    refused = await run(env.zendesk(bad), env.action(ActionType.ADD_INTERNAL_NOTE, 1, text="x"))
    assert (refused.status, refused.error_code, refused.attempts) == ("failed", "auth_failed", 1)
    env.server.inject("zendesk", Status(503), Status(503), Status(503))
    down = await run(env.zendesk(), env.action(ActionType.ADD_INTERNAL_NOTE, 2, text="x"))
    assert (down.status, down.error_code, down.attempts) == ("failed", "upstream_5xx", 3)
    later = await run(env.zendesk(), env.action(ActionType.ADD_INTERNAL_NOTE, 2, text="x"))
    assert later.status == "executed"  # a failed key may be run again
    assert env.ledger.get(later.key).claims == 2  # type: ignore[union-attr]


# -- Stripe ---------------------------------------------------------------------------------


async def test_refund_sends_the_key_as_stripes_idempotency_key(env: Env) -> None:
    action = env.action(ActionType.ISSUE_REFUND, params={"charge_id": CHARGE,
                                                         "reason": "duplicate"})
    result = await run(env.stripe(), action)
    assert result.status == "executed", result
    [refund] = env.world.stripe.refunds
    assert (refund["charge"], refund["amount"], refund["reason"]) == (CHARGE, 49900, "duplicate")
    assert refund["metadata"] == {"sleuth_key": action.key,
                                  "investigation_id": env.investigation}
    assert result.external_id == refund["id"]
    [post] = env.writes("stripe_write")
    assert post["headers"]["idempotency-key"] == action.key


async def test_refund_lost_answer_replays_instead_of_refunding_again(env: Env) -> None:
    env.world.stripe.fail_after_apply(503)
    result = await run(env.stripe(), env.action(
        ActionType.ISSUE_REFUND, params={"charge_id": CHARGE, "amount": 1000}))
    assert (result.status, result.replayed, result.attempts) == ("executed", True, 2)
    assert len(env.world.stripe.refunds) == 1
    assert env.world.stripe.replays == 1


async def test_crash_between_refund_and_ledger_does_not_refund_twice(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    action = env.action(ActionType.ISSUE_REFUND, params={"charge_id": CHARGE, "amount": 2500})
    real_finish = env.ledger.finish
    calls = {"n": 0}

    def crash_once(key: str, result: EffectResult) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("UPDATE effector_ledger", {}, Exception("disk I/O error"))
        real_finish(key, result)

    monkeypatch.setattr(env.ledger, "finish", crash_once)
    with pytest.raises(LedgerUnavailableError):
        await run(env.stripe(), action)
    assert len(env.world.stripe.refunds) == 1
    assert env.ledger.get(action.key).status == "started"  # type: ignore[union-attr]
    resumed = await run(env.stripe(), action)
    assert (resumed.status, resumed.replayed) == ("executed", True)
    assert len(env.world.stripe.refunds) == 1
    assert resumed.external_id == env.world.stripe.refunds[0]["id"]
    sent = len(env.server.received("stripe_write"))
    third = await run(env.stripe(), action)
    assert third.status == "duplicate"
    assert len(env.server.received("stripe_write")) == sent


async def test_credit_is_a_negative_balance_transaction(env: Env) -> None:
    result = await run(env.stripe(), env.action(ActionType.APPLY_CREDIT, params={
        "customer_id": CUSTOMER, "amount": 4990, "description": "goodwill"}))
    assert result.status == "executed", result
    [txn] = env.world.stripe.balance_transactions
    assert (txn["amount"], txn["currency"], txn["customer"]) == (-4990, "usd", CUSTOMER)
    assert env.writes("stripe_write")[0]["headers"]["idempotency-key"] == result.key


@pytest.mark.parametrize("params", [
    {"charge_id": CHARGE, "amount_usd": 10},          # unknown: never silently a full refund
    {"charge_id": "ch_x; DROP", "amount": 10},
    {"charge_id": CHARGE, "amount": 0},
    {"charge_id": CHARGE},                            # no amount under max_amount
    {"charge_id": CHARGE, "amount": 20_000},          # over max_amount
])
async def test_refusals_before_any_money_moves(env: Env, params: dict[str, Any]) -> None:
    config = sbx.stripe_write_config(env.server).model_copy(update={"max_amount": 10_000})
    result = await run(env.stripe(config), env.action(ActionType.ISSUE_REFUND, params=params))
    assert (result.status, result.error_code) == ("failed", "invalid_request")
    assert env.server.received("stripe_write") == []


async def test_stripe_typed_failures(env: Env) -> None:
    bad = sbx.stripe_write_config(env.server).model_copy(
        update={"api_key": SecretStr("rk_test_wrongwrongwrong")})
    refused = await run(env.stripe(bad), env.action(ActionType.ISSUE_REFUND,
                                                    params={"charge_id": CHARGE}))
    assert (refused.status, refused.error_code, refused.attempts) == ("failed", "auth_failed", 1)
    missing = await run(env.stripe(), env.action(ActionType.ISSUE_REFUND, 1,
                                                 params={"charge_id": "ch_nosuchcharge"}))
    assert (missing.status, missing.error_code) == ("failed", "not_found")
    assert env.world.stripe.refunds == []


# -- Linear ---------------------------------------------------------------------------------


def test_the_documents_are_valid_against_linears_schema() -> None:
    schema = linear_schema()
    for document in (ISSUE_CREATE, ISSUE_BY_ID):
        assert validate(schema, parse(document)) == []
    create_input = schema.type_map["IssueCreateInput"]
    assert isinstance(create_input, GraphQLInputObjectType)
    assert str(create_input.fields["id"].type) == "String"  # the caller may choose the id


async def test_bug_report_is_created_with_the_keys_issue_id(env: Env) -> None:
    action = env.action(ActionType.CREATE_BUG_REPORT, params={"title": "500s after 2.14.1",
                                                              "priority": 1},
                        text="Body parser rejects chunked requests.")
    result = await run(env.linear(), action)
    assert result.status == "executed", result
    [issue] = env.world.linear.created
    assert issue["id"] == issue_id_for(action.key)
    assert uuid.UUID(issue["id"]).version == 4
    numbers = [int(i["identifier"].split("-")[1]) for i in env.world.linear.issues
               if i is not issue]
    assert result.external_id == issue["identifier"] == f"GW-{max(numbers) + 1}"
    assert issue["title"] == "500s after 2.14.1" and issue["priority"] == 1
    assert issue["description"].startswith("Body parser rejects chunked requests.")
    assert env.investigation in issue["description"]
    [post] = env.writes("linear_write")
    variables = json_body(post)["variables"]["input"]
    assert variables["teamId"] == sbx.LINEAR_TEAM_ID


async def test_bug_report_lost_answer_finds_the_issue_instead_of_filing_twice(env: Env) -> None:
    env.world.linear.fail_after_apply(503)
    action = env.action(ActionType.CREATE_BUG_REPORT, params={"title": "Flaky 500s"})
    result = await run(env.linear(), action)
    assert (result.status, result.replayed) == ("executed", True)
    assert len(env.world.linear.created) == 1
    assert result.external_id == env.world.linear.created[0]["identifier"]


async def test_linear_typed_failures(env: Env) -> None:
    bad = sbx.linear_write_config(env.server).model_copy(update={"api_key": SecretStr("nope")})
    refused = await run(env.linear(bad), env.action(ActionType.CREATE_BUG_REPORT,
                                                    params={"title": "Flaky 500s"}))
    assert (refused.status, refused.error_code, refused.attempts) == ("failed", "auth_failed", 1)
    wrong_team = sbx.linear_write_config(env.server).model_copy(update={"team_id": "nope"})
    refused = await run(env.linear(wrong_team), env.action(ActionType.CREATE_BUG_REPORT, 1,
                                                           params={"title": "Flaky 500s"}))
    assert (refused.status, refused.error_code) == ("failed", "not_found")  # no such team
    assert env.world.linear.created == []


async def test_link_known_issue_posts_a_note_naming_it(env: Env) -> None:
    result = await run(env.linker(), env.action(ActionType.LINK_KNOWN_ISSUE,
                                                params={"issue": "GW-677"}))
    assert (result.status, result.external_id) == ("executed", "GW-677")
    [note] = env.world.zendesk.comments[TICKET]
    assert note["public"] is False
    assert "GW-677" in note["body"] and "linear.app/gatewayco/issue/GW-677" in note["body"]
    made_up = await run(env.linker(), env.action(ActionType.LINK_KNOWN_ISSUE, 1,
                                                 params={"issue": "GW-9999"}))
    assert (made_up.status, made_up.error_code) == ("failed", "not_found")
    assert len(env.writes("zendesk")) == 1


# -- paging ---------------------------------------------------------------------------------


async def test_page_is_a_signed_events_v2_trigger(env: Env) -> None:
    action = env.action(ActionType.ESCALATE_TO_ONCALL, params={"severity": "critical"},
                        text="500s on 2.14.1 across workspaces")
    result = await run(env.paging(), action)
    assert (result.status, result.external_id) == ("executed", action.key)
    [event] = env.world.paging.pages.values()
    assert event["event_action"] == "trigger" and event["dedup_key"] == action.key
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["custom_details"]["investigation_id"] == env.investigation
    [post] = env.writes("paging")
    assert post["headers"]["idempotency-key"] == action.key
    assert post["headers"]["x-sleuth-signature"] == sbx.signature(
        sbx.PAGING_SECRET, post["headers"]["x-sleuth-timestamp"], post["body"])


async def test_page_lost_answer_opens_one_incident(env: Env) -> None:
    env.world.paging.fail_after_apply(502)
    result = await run(env.paging(), env.action(ActionType.ESCALATE_TO_ONCALL, text="down"))
    assert (result.status, result.replayed) == ("executed", True)
    assert len(env.world.paging.pages) == 1
    assert len(env.world.paging.events) == 2  # both deliveries arrived; one page


async def test_page_with_a_wrong_secret_is_refused(env: Env) -> None:
    bad = sbx.paging_config(env.server).model_copy(
        update={"signing_secret": SecretStr("not-the-secret")})
    result = await run(env.paging(bad), env.action(ActionType.ESCALATE_TO_ONCALL, text="x"))
    assert (result.status, result.error_code) == ("failed", "auth_failed")
    assert env.world.paging.pages == {}


# -- the ledger -----------------------------------------------------------------------------

_RESUME = """
import asyncio, json, sys
from pydantic import SecretStr
from core.resilience import ResiliencePolicy
from core.settings import ResilienceSettings
from governance.db import make_engine
from governance.effectors import EffectorAction, Ledger, ZendeskEffector
from governance.effectors.zendesk import ZendeskConfig

url, db, action = sys.argv[1], sys.argv[2], EffectorAction.model_validate_json(sys.argv[3])
config = ZendeskConfig(base_url=url, email=sys.argv[4], api_token=SecretStr(sys.argv[5]))
effector = ZendeskEffector(config, policy=ResiliencePolicy("resume", ResilienceSettings()),
                           ledger=Ledger(make_engine("sqlite:///" + db)))
print(asyncio.run(effector.execute(action, key=action.key)).model_dump_json())
"""


async def test_the_ledger_survives_a_new_process(env: Env) -> None:
    action = env.action(ActionType.ADD_INTERNAL_NOTE, text="before the restart")
    first = await run(env.zendesk(), action)
    assert first.status == "executed"
    env.engine.dispose()
    env.server.clear()
    done = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-c", _RESUME, env.server.url("zendesk"), str(env.db_path),
        action.model_dump_json(), sbx.ZENDESK_EMAIL, sbx.ZENDESK_TOKEN,
    ], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = EffectResult.model_validate_json(done.stdout.strip().splitlines()[-1])
    assert (resumed.status, resumed.external_id) == ("duplicate", first.external_id)
    assert env.server.received("zendesk") == []


def _ledger_round_trip(ledger: Ledger, investigation: str) -> None:
    key = idempotency_key(investigation, 0, "tag_ticket")
    assert ledger.begin(key, action_type="tag_ticket", investigation_id=investigation) is None
    assert ledger.begin(key, action_type="tag_ticket", investigation_id=investigation) is None
    done = EffectResult(status="executed", key=key, action_type="tag_ticket", external_id="x/1")
    ledger.finish(key, done)
    ledger.finish(key, done.model_copy(update={"status": "failed"}))  # never downgrades
    assert ledger.begin(key, action_type="tag_ticket", investigation_id=investigation) == done
    [row] = ledger.for_investigation(investigation)
    assert (row.status, row.claims, row.external_id) == ("done", 2, "x/1")


def test_ledger_states_on_sqlite(env: Env) -> None:
    _ledger_round_trip(env.ledger, env.investigation)


@pytest.mark.postgres
def test_ledger_states_on_postgres(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        create_ledger_table(engine)
        _ledger_round_trip(Ledger(engine), f"inv-{uuid.uuid4().hex}")
    finally:
        engine.dispose()


# -- wiring and secrets ---------------------------------------------------------------------


async def test_effector_set_routes_by_type(env: Env) -> None:
    effectors = build_effectors(
        env.ledger, env.policy, zendesk=sbx.zendesk_config(env.server),
        linear=sbx.linear_write_config(env.server), paging=sbx.paging_config(env.server))
    env.made.append(effectors)
    assert effectors.for_type(ActionType.ISSUE_REFUND) is None  # Stripe is not configured
    assert isinstance(effectors.for_type(ActionType.LINK_KNOWN_ISSUE), KnownIssueLinker)
    refund = await effectors.execute(env.action(ActionType.ISSUE_REFUND,
                                                params={"charge_id": CHARGE}))
    assert (refund.status, refund.error_code) == ("failed", "unsupported_action")
    note = await effectors.execute(env.action(ActionType.ADD_INTERNAL_NOTE, 1, text="hi"))
    assert note.status == "executed"
    with pytest.raises(ConfigurationError, match="two effectors"):
        EffectorSet([env.zendesk(), env.zendesk()])


async def test_secrets_reach_no_log_result_or_ledger(env: Env) -> None:
    secrets = [sbx.ZENDESK_TOKEN, sbx.STRIPE_KEY, sbx.PAGING_SECRET, sbx.PAGING_ROUTING_KEY,
               "rk_test_wrongwrongwrong"]
    wrong = sbx.stripe_write_config(env.server).model_copy(
        update={"api_key": SecretStr("rk_test_wrongwrongwrong")})
    with capture_logs() as logs:
        results = [
            await run(env.zendesk(), env.action(ActionType.ADD_INTERNAL_NOTE, 0, text="n")),
            await run(env.stripe(), env.action(ActionType.ISSUE_REFUND, 1,
                                               params={"charge_id": CHARGE, "amount": 100})),
            await run(env.stripe(wrong), env.action(ActionType.ISSUE_REFUND, 2,
                                                    params={"charge_id": CHARGE})),
            await run(env.paging(), env.action(ActionType.ESCALATE_TO_ONCALL, 3, text="p")),
        ]
    assert [r.status for r in results] == ["executed", "executed", "failed", "executed"]
    assert len(logs) == 4 and all(e["event"] == "effector_call" for e in logs)
    rows = env.ledger.for_investigation(env.investigation)
    seen = json.dumps([logs, [r.model_dump() for r in results],
                       [r.model_dump(mode="json") for r in rows]], default=str)
    seen += repr(sbx.zendesk_config(env.server)) + repr(sbx.paging_config(env.server))
    for secret in secrets:
        assert secret not in seen
