"""The Stripe connector against the Stripe sandbox: real cases, faults, hostile input."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import stripe

from connectors.base import Connector
from connectors.registry import DisabledConnector, build_connector
from connectors.stripe.client import translate
from connectors.stripe.config import StripeConfig
from connectors.stripe.connector import money, when
from core.errors import (
    AuthError,
    ConnectTimeoutError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    ResponseTimeoutError,
    UpstreamServerError,
)
from core.settings import BreakerSettings, ResilienceSettings, RetrySettings, TimeoutSettings
from core.telemetry import Metrics
from sandbox.apis.stripe import routes, sandbox_config
from sandbox.cases import World, load_case
from sandbox.http import Hang, LoopbackServer, Malformed, Status
from sandbox.models import closed_port

CASES = Path(__file__).resolve().parents[2] / "evals" / "cases"
FAST = ResilienceSettings(
    timeouts=TimeoutSettings(connect_s=0.5, response_s=1.0, total_budget_s=3.0),
    retry=RetrySettings(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.05, jitter_s=0),
    breaker=BreakerSettings(failure_threshold=3, cooldown_s=30),
)
DOVETAIL = "cus_rKhfHCMe3NAN9R"  # pub-01: charged twice for invoice in_1NY5eBs0Hb7WnX3cWhDLDqCX
BIRCHWOOD = "cus_8tHI1tN5ajHMuC"  # pub-06: card declined, subscription past_due
# A refund of pub-01's duplicate charge, in the shape Stripe's API returns.
REFUND: dict[str, Any] = {
    "id": "re_1QTBwzfdHb7WnX3cR3fUnD01", "object": "refund", "amount": 49900,
    "balance_transaction": "txn_1QTBwzfdHb7WnX3cBt00Rf01", "charge": "ch_1QTBvdfdHb7WnX3cCoscJFYQ",
    "created": 1775748000, "currency": "usd", "customer": DOVETAIL, "customer_account": None,
    "destination_details": {"card": {"reference": "4829105", "reference_status": "available",
                                     "reference_type": "acquirer_reference_number",
                                     "type": "refund"}, "type": "card"},
    "metadata": {}, "payment_intent": "pi_1Y9s7n1qHb7WnX3cZLZuKUtC",
    "payment_method": "pm_1kV3iCRxHb7WnX3cTA4TE7qv", "reason": "duplicate", "receipt_number": None,
    "source_transfer_reversal": None, "status": "succeeded", "transfer_reversal": None,
}


def extra_world(folder: Path) -> World:
    """Return pub-01's Stripe world with the refund above and 150 newer customers (2 pages)."""
    data = json.loads((CASES / "pub-01-double-charge" / "world" / "stripe.json").read_text())
    template = data["customers"][1]
    fillers = [{**template, "id": f"cus_fill{n:04d}", "email": f"user{n}@example.org",
                "created": 1_790_000_000 + n, "metadata": {"workspace_id": f"ws_fill{n}"}}
               for n in range(150)]
    data["customers"] = fillers + data["customers"]
    for charge in data["charges"]:
        if charge["id"] == REFUND["charge"]:
            charge.update(amount_refunded=49900, refunded=True)
    data["refunds"] = [REFUND]
    (folder / "stripe.json").write_text(json.dumps(data))
    return World(folder)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackServer]:
    """Serve pub-01 (`stripe`), pub-06, pub-07 and the extended world on one loopback server."""
    srv = LoopbackServer()
    for mount, world in (
        ("stripe", load_case(CASES / "pub-01-double-charge").world),
        ("stripe06", load_case(CASES / "pub-06-card-declined").world),
        ("stripe07", load_case(CASES / "pub-07-quota-used-up").world),
        ("stripex", extra_world(tmp_path_factory.mktemp("stripe-world"))),
    ):
        srv.mount(mount, routes(world))
    with srv:
        yield srv


@pytest.fixture
async def connect(server: LoopbackServer) -> AsyncIterator[Any]:
    """Return a factory of connectors to a mount; they are closed after the test."""
    server.clear()
    made: list[Connector] = []

    def build(mount: str = "stripe", config: StripeConfig | None = None) -> Connector:
        cfg = config or sandbox_config(server.url(mount), World(Path("/nonexistent")))
        built = build_connector("stripe", cfg, resilience=FAST, metrics=Metrics())
        assert isinstance(built, Connector)
        made.append(built)
        return built

    yield build
    for connector in made:
        await connector.aclose()
    server.clear()


def queries(server: LoopbackServer, mount: str = "stripe") -> list[tuple[str, dict[str, Any]]]:
    """Return (path, parsed query) of each request the mount received."""
    return [(r["path"], parse_qs(r["query"])) for r in server.received(mount)]


# -- operations on real cases ------------------------------------------------


async def test_find_customer_by_email(connect: Any, server: LoopbackServer) -> None:
    result = await connect().run("find_customer", {"email": "henry@dovetaildocs.com"})
    assert result.ok, result.error
    [customer] = result.evidence
    assert (customer.source, customer.ref) == ("stripe", DOVETAIL)
    assert customer.data["workspace_id"] == "ws_dovetail"
    assert customer.data["delinquent"] is False
    assert customer.url == f"https://dashboard.stripe.com/customers/{DOVETAIL}"
    assert "Dovetail Docs" in customer.summary
    assert queries(server) == [("/stripe/v1/customers",
                                {"email": ["henry@dovetaildocs.com"], "limit": ["10"]})]


async def test_find_customer_by_email_falls_back_to_lowercase(connect: Any,
                                                            server: LoopbackServer) -> None:
    result = await connect().run("find_customer", {"email": "Henry@DovetailDocs.com"})
    assert [e.ref for e in result.evidence] == [DOVETAIL]
    assert len(server.received("stripe")) == 2


async def test_find_customer_by_workspace_uses_search(connect: Any, server: LoopbackServer) -> None:
    result = await connect("stripe06").run("find_customer", {"workspace_id": "ws_birchwood"})
    assert [e.ref for e in result.evidence] == [BIRCHWOOD]
    [(path, query)] = queries(server, "stripe06")
    assert path == "/stripe06/v1/customers/search"
    assert query["query"] == ["metadata['workspace_id']:'ws_birchwood'"]


async def test_find_customer_by_domain_pages_through_customers(connect: Any,
                                                               server: LoopbackServer) -> None:
    result = await connect("stripex").run("find_customer", {"domain": "DovetailDocs.com"})
    assert [e.ref for e in result.evidence] == [DOVETAIL]
    pages = queries(server, "stripex")
    assert len(pages) == 2  # 154 customers, 100 a page: the match is on the second one
    assert pages[1][1]["starting_after"] == ["cus_fill0050"]


async def test_find_customer_without_match_is_empty(connect: Any) -> None:
    result = await connect().run("find_customer", {"email": "nobody@example.org"})
    assert result.ok
    assert result.evidence == []


async def test_subscription_past_due(connect: Any) -> None:
    result = await connect("stripe06").run("subscriptions", {"customer_id": BIRCHWOOD})
    [sub] = result.evidence
    assert sub.ref == "sub_1fJDvsQwHb7WnX3cpChVV08h"
    assert sub.data["status"] == "past_due"
    assert sub.data["latest_invoice"] == "in_1V7GxguaHb7WnX3c4DMUgdYk"
    assert sub.data["monthly_request_quota"] == "100000"
    assert "is past_due" in sub.summary
    assert sub.url == "https://dashboard.stripe.com/subscriptions/sub_1fJDvsQwHb7WnX3cpChVV08h"


async def test_subscription_quota_and_plan(connect: Any, server: LoopbackServer) -> None:
    result = await connect("stripe07").run("subscriptions", {"customer_id": "cus_Q720zLdcYw7avb"})
    [sub] = result.evidence
    assert sub.ref == "sub_1fuqjEjKHb7WnX3cgvmzdFDT"
    assert sub.data["monthly_request_quota"] == "10000"
    assert sub.data["plan"]["unit_amount"] == 4900
    assert "10,000 requests/month" in sub.summary
    assert "$49.00/month" in sub.summary
    assert queries(server, "stripe07")[0][1]["status"] == ["all"]


async def test_invoices_show_the_open_invoice_after_a_failed_attempt(connect: Any) -> None:
    result = await connect("stripe06").run("invoices", {"customer_id": BIRCHWOOD})
    refs = [e.ref for e in result.evidence]
    assert refs[0] == "in_1V7GxguaHb7WnX3c4DMUgdYk"  # newest first
    assert len(refs) == 3
    unpaid = result.evidence[0]
    assert unpaid.data["status"] == "open"
    assert unpaid.data["attempt_count"] == 1
    assert unpaid.data["amount_due"] == 49900
    assert unpaid.data["next_payment_attempt"] == 1771416711
    assert unpaid.data["charge"] == "ch_1NsMbH1mHb7WnX3cFIhyDJF0"
    assert "is open with $499.00 due after 1 payment attempt(s)" in unpaid.summary


async def test_invoices_honour_limit(connect: Any, server: LoopbackServer) -> None:
    result = await connect().run("invoices", {"customer_id": DOVETAIL, "limit": 2})
    assert len(result.evidence) == 2
    assert queries(server)[0][1]["limit"] == ["2"]


async def test_charges_show_the_decline(connect: Any) -> None:
    result = await connect("stripe06").run("charges", {"customer_id": BIRCHWOOD})
    failed = next(e for e in result.evidence if e.data["status"] == "failed")
    assert failed.ref == "ch_1NsMbH1mHb7WnX3cFIhyDJF0"
    assert failed.data["failure_code"] == "card_declined"
    assert failed.data["outcome"]["reason"] == "generic_decline"
    assert failed.data["card"] == {"brand": "mastercard", "last4": "5100", "funding": "credit",
                                   "country": "US", "exp_month": 5, "exp_year": 2031}
    assert failed.summary.startswith(
        "Charge ch_1NsMbH1mHb7WnX3cFIhyDJF0 of $499.00 failed: card_declined (generic_decline) "
        "on 2026-02-17")
    assert "fingerprint" not in json.dumps([e.data for e in result.evidence])


async def test_charges_call_out_two_succeeded_charges_for_one_invoice(connect: Any) -> None:
    result = await connect().run("charges", {"customer_id": DOVETAIL})
    twins = {e.ref for e in result.evidence if e.data["succeeded_charges_for_invoice"] == 2}
    assert twins == {"ch_1eR0fCSqHb7WnX3cqsCH1CGS", "ch_1QTBvdfdHb7WnX3cCoscJFYQ"}
    for charge in result.evidence:
        if charge.ref in twins:
            assert charge.data["invoice"] == "in_1NY5eBs0Hb7WnX3cWhDLDqCX"
            assert "one of 2 succeeded charges for that invoice" in charge.summary
        else:
            assert charge.data["succeeded_charges_for_invoice"] == 1


async def test_refunds_of_the_customers_charges(connect: Any, server: LoopbackServer) -> None:
    result = await connect("stripex").run("refunds", {"customer_id": DOVETAIL})
    [refund] = result.evidence
    assert refund.ref == REFUND["id"]
    assert refund.data["charge"] == "ch_1QTBvdfdHb7WnX3cCoscJFYQ"
    assert refund.data["amount"] == 49900
    assert "Refund re_1QTBwzfdHb7WnX3cR3fUnD01 of $499.00" in refund.summary
    assert "(duplicate)" in refund.summary
    assert [q for p, q in queries(server, "stripex") if p.endswith("/refunds")] == [
        {"charge": ["ch_1QTBvdfdHb7WnX3cCoscJFYQ"], "limit": ["100"]}]


async def test_refunds_none_without_refunded_charges(connect: Any, server: LoopbackServer) -> None:
    result = await connect().run("refunds", {"customer_id": DOVETAIL})
    assert result.ok
    assert result.evidence == []
    assert len(server.received("stripe")) == 1  # the charge list only


async def test_health(connect: Any) -> None:
    assert (await connect().health()).status == "ok"


def test_missing_key_disables_the_connector() -> None:
    assert StripeConfig().missing() == ["api_key"]
    built = build_connector("stripe", StripeConfig(), resilience=FAST, metrics=Metrics())
    assert isinstance(built, DisabledConnector)


# -- faults ------------------------------------------------------------------

CHARGES = {"customer_id": DOVETAIL}


async def test_hang_times_out_and_the_retry_succeeds(connect: Any, server: LoopbackServer) -> None:
    server.inject("stripe", Hang(5))
    result = await connect().run("charges", CHARGES)
    assert result.ok, result.error
    assert result.attempts == 2


async def test_persistent_hang_is_timed_out(connect: Any, server: LoopbackServer) -> None:
    server.set_default_fault("stripe", Hang(5))
    started = time.monotonic()
    result = await connect().run("charges", CHARGES, budget_s=1.2)
    assert result.error is not None
    assert result.error.kind == "timed_out"
    assert time.monotonic() - started < 2.5


async def test_5xx_is_retried(connect: Any, server: LoopbackServer) -> None:
    server.inject("stripe", Status(503), Status(502))
    result = await connect().run("charges", CHARGES)
    assert result.ok
    assert result.attempts == 3


async def test_429_retry_after_is_honoured(connect: Any, server: LoopbackServer) -> None:
    server.inject("stripe", Status(429, retry_after="1"))
    started = time.monotonic()
    result = await connect().run("charges", CHARGES)
    assert result.ok
    assert result.attempts == 2
    assert time.monotonic() - started >= 0.95


async def test_401_is_unauthorized_and_not_retried(connect: Any, server: LoopbackServer) -> None:
    server.inject("stripe", Status(401))
    result = await connect().run("charges", CHARGES)
    assert result.error is not None
    assert (result.error.kind, result.error.code, result.attempts) == (
        "unauthorized", "auth_failed", 1)


async def test_malformed_payload_is_bad_response(connect: Any, server: LoopbackServer) -> None:
    server.inject("stripe", Malformed())
    result = await connect().run("charges", CHARGES)
    assert result.error is not None
    assert (result.error.kind, result.attempts) == ("bad_response", 1)


async def test_unexpected_shape_is_bad_response(connect: Any, server: LoopbackServer) -> None:
    server.inject("stripe", Status(200, body={"object": "list", "data": [{"no": "id"}]}))
    result = await connect().run("charges", CHARGES)
    assert result.error is not None
    assert result.error.kind == "bad_response"


async def test_refused_connection_is_unavailable(connect: Any) -> None:
    config = StripeConfig(api_key="sandbox", base_url=f"http://127.0.0.1:{closed_port()}/stripe")
    result = await connect(config=config).run("charges", CHARGES)
    assert result.error is not None
    assert (result.error.kind, result.error.code) == ("unavailable", "connection_failed")


async def test_breaker_opens_and_then_refuses_without_calling(connect: Any,
                                                              server: LoopbackServer) -> None:
    server.set_default_fault("stripe", Status(503))
    connector = connect()
    first = await connector.run("charges", CHARGES)
    assert first.error is not None
    assert first.error.code == "upstream_5xx"
    reached = len(server.received("stripe"))
    assert reached == 3
    second = await connector.run("charges", CHARGES)
    assert second.error is not None
    assert (second.error.kind, second.error.code) == ("unavailable", "circuit_open")
    assert len(server.received("stripe")) == reached


HOSTILE = [
    ("find_customer", {"email": "x' OR 1=1 --@a.io"}),
    ("find_customer", {"email": "a@b.io\nmetadata['plan']:'x'"}),
    ("find_customer", {"email": "a" * 5_000 + "@b.io"}),
    ("find_customer", {"workspace_id": "ws_a' OR metadata['plan']:'growth"}),
    ("find_customer", {"workspace_id": "ws_a\\'"}),
    ("find_customer", {"domain": "../../etc/passwd"}),
    ("find_customer", {"domain": "evil.com' OR '1'='1"}),
    ("find_customer", {"email": "a@b.io", "domain": "b.io"}),
    ("find_customer", {}),
    ("find_customer", {"email": "a@b.io", "limit": 10**9}),
    ("charges", {"customer_id": "../../v1/balance"}),
    ("charges", {"customer_id": "cus_abc/../../refunds"}),
    ("charges", {"customer_id": "cus_" + "a" * 65}),
    ("invoices", {"customer_id": DOVETAIL, "limit": 0}),
    ("refunds", {"customer_id": DOVETAIL, "limit": -1}),
    ("subscriptions", {"customer_id": DOVETAIL, "expand": ["data.customer"]}),
    ("create_refund", {"charge": "ch_1QTBvdfdHb7WnX3cCoscJFYQ"}),
]


@pytest.mark.parametrize(("operation", "params"), HOSTILE)
async def test_hostile_parameters_are_refused(connect: Any, server: LoopbackServer,
                                              operation: str, params: dict[str, Any]) -> None:
    result = await connect().run(operation, params)
    assert result.error is not None
    assert result.error.kind == "invalid_parameters"
    assert server.received("stripe") == []


# -- the sandbox itself ------------------------------------------------------


def test_sandbox_refuses_writes(server: LoopbackServer) -> None:
    base = server.url("stripe")
    auth = {"Authorization": "Bearer sandbox"}
    refund = httpx.post(f"{base}/v1/refunds", data={"charge": "ch_1"}, headers=auth)
    assert refund.status_code == 405
    assert httpx.delete(f"{base}/v1/customers/{DOVETAIL}", headers=auth).status_code == 405


# -- error translation and formatting ----------------------------------------


def test_translate_maps_stripe_errors() -> None:
    limited = translate(stripe.RateLimitError("slow down", http_status=429,
                                              headers={"Retry-After": "7"}))
    assert isinstance(limited, RateLimitedError)
    assert limited.retry_after == 7.0
    assert isinstance(translate(stripe.PermissionError("no", http_status=403)), AuthError)
    assert isinstance(translate(stripe.AuthenticationError("no", http_status=401)), AuthError)
    assert isinstance(translate(stripe.InvalidRequestError("gone", "id", http_status=404)),
                      NotFoundError)
    assert isinstance(translate(stripe.InvalidRequestError("bad", "limit", http_status=400)),
                      InvalidRequestError)
    assert isinstance(translate(stripe.APIError("boom", http_status=502)), UpstreamServerError)
    for cause, expected in ((httpx.ConnectTimeout("c"), ConnectTimeoutError),
                            (httpx.ReadTimeout("r"), ResponseTimeoutError)):
        error = stripe.APIConnectionError("net")
        error.__cause__ = cause
        assert isinstance(translate(error), expected)


def test_money_and_time_formatting() -> None:
    assert money(49900, "usd") == "$499.00"
    assert money(500, "jpy") == "¥500"
    assert money(1250, "chf") == "12.50 CHF"
    assert money(None, "usd") == "an unknown amount"
    assert when(1775661600) == "2026-04-08 15:20 UTC"
    assert when(1775661600, clock=False) == "2026-04-08"
