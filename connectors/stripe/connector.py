"""The Stripe connector: who the customer is and what happened to their money.

Each Stripe object read becomes one evidence item cited by its own id; amounts stay
in minor units in `data` and are formatted in summaries; cards show brand and last4 only.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, model_validator

from connectors.base import Connector, Params, operation
from connectors.stripe.client import StripeReader
from connectors.stripe.config import StripeConfig
from core.domain import Evidence
from core.resilience import Attempt

CUSTOMER_ID = r"^cus_[A-Za-z0-9]{1,64}$"
WORKSPACE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
# no whitespace, quotes or backslashes: an address is only ever sent as a form parameter
EMAIL = r"^[^@\s\"\\<>]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"
DOMAIN = r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
DASHBOARD = "https://dashboard.stripe.com"
_DOMAIN_SCAN_PAGES = 10  # a domain lookup reads at most 1,000 customers, newest first
_REFUND_SCAN_CHARGES = 10  # refunds are listed for at most this many refunded charges
_ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg",
                           "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"})
_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$"}


class FindCustomerParams(Params):
    """Exactly one of: an exact email, an email domain, or a workspace id."""

    email: str | None = Field(None, max_length=254, pattern=EMAIL)
    domain: str | None = Field(None, max_length=253, pattern=DOMAIN)
    workspace_id: str | None = Field(None, pattern=WORKSPACE_ID)
    limit: int = Field(10, ge=1, le=100)

    @model_validator(mode="after")
    def _exactly_one(self) -> FindCustomerParams:
        if sum(getattr(self, n) is not None for n in ("email", "domain", "workspace_id")) != 1:
            raise ValueError("give exactly one of email, domain, workspace_id")
        return self


class CustomerParams(Params):
    """A Stripe customer id and how many objects to read (newest first)."""

    customer_id: str = Field(pattern=CUSTOMER_ID)
    limit: int = Field(20, ge=1, le=100)


def money(amount: Any, currency: Any) -> str:
    """Format minor units as a human amount ("$499.00", "¥500", "12.00 CHF")."""
    if not isinstance(amount, int):
        return "an unknown amount"
    code = str(currency or "").lower()
    value = f"{amount:,}" if code in _ZERO_DECIMAL else f"{amount / 100:,.2f}"
    symbol = _SYMBOLS.get(code)
    return f"{symbol}{value}" if symbol else f"{value} {code.upper()}".strip()


def when(ts: Any, *, clock: bool = True) -> str:
    """Format a Unix timestamp as UTC ("2026-04-08 15:20 UTC", or the date alone)."""
    if not isinstance(ts, int | float):
        return "an unknown time"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC" if clock else "%Y-%m-%d")


def _link(obj: dict[str, Any], path: str) -> str:
    return f"{DASHBOARD}{'' if obj.get('livemode', True) else '/test'}/{path}"


def _pick(obj: dict[str, Any], names: str) -> dict[str, Any]:
    """Copy the space-separated fields `names` of `obj` (absent ones as None)."""
    return {name: obj.get(name) for name in names.split()}


def _ref_id(value: Any) -> str | None:
    """Return the id of an expandable field (an id string or an expanded object)."""
    value = value.get("id") if isinstance(value, dict) else value
    return value if isinstance(value, str) else None


class StripeConnector(Connector):
    """Reads Stripe billing state with a restricted, read-only key."""

    name = "stripe"
    config_model = StripeConfig

    def __init__(self, config: StripeConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.reader = StripeReader(config)

    def _evidence(self, obj: dict[str, Any], title: str, summary: str, data: dict[str, Any],
                  url: str) -> Evidence:
        return Evidence(source="stripe", ref=obj["id"], title=title, summary=summary,
                        data=data, url=url, observed_at=self.now())

    @operation("find_customer", FindCustomerParams,
               "Find Stripe customers by exact email, email domain, or metadata workspace_id.")
    async def find_customer(self, params: FindCustomerParams, attempt: Attempt) -> list[Evidence]:
        """Return one evidence item per matching customer."""
        found: list[dict[str, Any]] = []
        if params.email is not None:
            # Stripe's email filter is case-sensitive; addresses are mostly stored lowercase
            for address in dict.fromkeys([params.email, params.email.lower()]):
                found = (await self.reader.list(attempt, "customers", {
                    "email": address, "limit": params.limit}))["data"]
                if found:
                    break
        elif params.workspace_id is not None:
            # the pattern admits no quote or backslash; escaping anyway keeps the value quoted
            value = params.workspace_id.replace("\\", "\\\\").replace("'", "\\'")
            query = f"metadata['workspace_id']:'{value}'"
            found = (await self.reader.search_customers(attempt, query, params.limit))["data"]
        else:
            found = await self._scan_domain(attempt, str(params.domain), params.limit)
        return [self._customer(c) for c in found]

    async def _scan_domain(self, attempt: Attempt, domain: str,
                           limit: int) -> list[dict[str, Any]]:
        """Page through customers (bounded) and keep those whose email is in `domain`."""
        domain = domain.lower()
        hits: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(_DOMAIN_SCAN_PAGES):
            params = {"limit": 100, **({"starting_after": cursor} if cursor else {})}
            page = await self.reader.list(attempt, "customers", params)
            for customer in page["data"]:
                host = str(customer.get("email") or "").lower().rpartition("@")[2]
                if host == domain or host.endswith("." + domain):
                    hits.append(customer)
            if len(hits) >= limit or not page.get("has_more") or not page["data"]:
                break
            cursor = page["data"][-1]["id"]
        return hits[:limit]

    def _customer(self, c: dict[str, Any]) -> Evidence:
        workspace = (c.get("metadata") or {}).get("workspace_id")
        state = "is delinquent" if c.get("delinquent") else "is in good standing"
        owed = f"; balance {money(c['balance'], c.get('currency'))}" if c.get("balance") else ""
        summary = (f"Customer {c.get('name') or c['id']} ({c.get('email') or 'no email'}), "
                   f"workspace {workspace or 'unknown'}, {state}{owed}.")
        data = _pick(c, "id email name delinquent balance currency created livemode")
        data["workspace_id"] = workspace
        return self._evidence(c, f"Stripe customer {c['id']}", summary, data,
                              _link(c, f"customers/{c['id']}"))

    @operation("subscriptions", CustomerParams,
               "List a customer's subscriptions of any status, with plan, period and quota.")
    async def subscriptions(self, params: CustomerParams, attempt: Attempt) -> list[Evidence]:
        """Return one evidence item per subscription."""
        page = await self.reader.list(attempt, "subscriptions", {
            "customer": params.customer_id, "status": "all", "limit": params.limit})
        return [self._subscription(s) for s in page["data"]]

    def _subscription(self, s: dict[str, Any]) -> Evidence:
        items = (s.get("items") or {}).get("data") or [{}]
        item: dict[str, Any] = items[0] if isinstance(items[0], dict) else {}
        price: dict[str, Any] = item.get("price") or {}
        interval = (price.get("recurring") or {}).get("interval")
        quota = ((s.get("metadata") or {}).get("monthly_request_quota")
                 or (price.get("metadata") or {}).get("monthly_request_quota"))
        # current periods moved from the subscription to its items in API 2025-03-31
        start = s.get("current_period_start", item.get("current_period_start"))
        end = s.get("current_period_end", item.get("current_period_end"))
        plan = price.get("nickname") or price.get("lookup_key") or price.get("id") or "unknown"
        cost = money(price.get("unit_amount"), price.get("currency") or s.get("currency"))
        quota_text = f"{int(str(quota)):,} requests/month" if str(quota).isdigit() else "unknown"
        summary = (f"Subscription {s['id']} ({plan}, {cost}/{interval or '?'}) is "
                   f"{s.get('status')}; current period {when(start, clock=False)} to "
                   f"{when(end, clock=False)}; quota {quota_text}; "
                   f"latest invoice {_ref_id(s.get('latest_invoice')) or 'none'}.")
        data = _pick(s, "id customer status created cancel_at cancel_at_period_end canceled_at "
                        "ended_at collection_method currency")
        data.update(latest_invoice=_ref_id(s.get("latest_invoice")),
                    current_period_start=start, current_period_end=end,
                    monthly_request_quota=quota, metadata=dict(s.get("metadata") or {}),
                    plan={**_pick(price, "nickname lookup_key unit_amount currency"),
                          "price": price.get("id"), "interval": interval,
                          "quantity": item.get("quantity")})
        return self._evidence(s, f"Subscription {s['id']}: {s.get('status')}", summary, data,
                              _link(s, f"subscriptions/{s['id']}"))

    @operation("invoices", CustomerParams,
               "List a customer's invoices, newest first, with status and payment attempts.")
    async def invoices(self, params: CustomerParams, attempt: Attempt) -> list[Evidence]:
        """Return one evidence item per invoice."""
        page = await self.reader.list(attempt, "invoices", {
            "customer": params.customer_id, "limit": params.limit})
        return [self._invoice(i) for i in page["data"]]

    def _invoice(self, i: dict[str, Any]) -> Evidence:
        name = f"{i.get('number') or 'draft'} ({i['id']})"
        cur, status, charge = i.get("currency"), i.get("status"), _ref_id(i.get("charge"))
        moments = i.get("status_transitions") or {}
        if status == "paid":
            story = (f"was paid ({money(i.get('amount_paid'), cur)}) on "
                     f"{when(moments.get('paid_at'))}")
        elif status == "open":
            retry = i.get("next_payment_attempt")
            story = (f"is open with {money(i.get('amount_remaining', i.get('amount_due')), cur)} "
                     f"due after {i.get('attempt_count', 0)} payment attempt(s); next attempt "
                     f"{when(retry) if retry else 'none scheduled'}")
        elif status == "void":
            story = f"was voided on {when(moments.get('voided_at'))}; nothing is owed on it"
        elif status == "uncollectible":
            story = f"was marked uncollectible on {when(moments.get('marked_uncollectible_at'))}"
        else:
            story = f"is {status}"
        summary = (f"Invoice {name} for {money(i.get('amount_due'), cur)} {story}"
                   f"{f'; charge {charge}' if charge else ''}.")
        data = _pick(i, "id number customer status amount_due amount_paid amount_remaining "
                        "currency attempt_count attempted next_payment_attempt created "
                        "period_start period_end billing_reason paid hosted_invoice_url")
        data.update(charge=charge, payment_intent=_ref_id(i.get("payment_intent")),
                    subscription=_ref_id(i.get("subscription")),
                    paid_at=moments.get("paid_at"), voided_at=moments.get("voided_at"))
        return self._evidence(i, f"Invoice {i.get('number') or i['id']}: {status}", summary, data,
                              _link(i, f"invoices/{i['id']}"))

    @operation("charges", CustomerParams,
               "List a customer's charges, newest first: outcomes, declines, refunds, invoices.")
    async def charges(self, params: CustomerParams, attempt: Attempt) -> list[Evidence]:
        """Return one evidence item per charge; duplicates for one invoice are called out."""
        page = await self.reader.list(attempt, "charges", {
            "customer": params.customer_id, "limit": params.limit})
        per_invoice = Counter(_ref_id(c.get("invoice")) for c in page["data"]
                              if c.get("status") == "succeeded" and _ref_id(c.get("invoice")))
        return [self._charge(c, per_invoice) for c in page["data"]]

    def _charge(self, c: dict[str, Any], per_invoice: Counter[str | None]) -> Evidence:
        card = ((c.get("payment_method_details") or {}).get("card") or {})
        outcome = c.get("outcome") or {}
        invoice = _ref_id(c.get("invoice"))
        paid_with = (f" with {str(card.get('brand') or 'card').title()} ending "
                     f"{card.get('last4')}" if card.get("last4") else "")
        if c.get("status") == "failed":
            reason = f" ({outcome['reason']})" if outcome.get("reason") else ""
            story = (f"failed: {c.get('failure_code') or 'unknown'}{reason} on "
                     f"{when(c.get('created'))}{paid_with}")
        else:
            story = f"{c.get('status')} on {when(c.get('created'))}{paid_with}"
        notes = [f"invoice {invoice}"] if invoice else []
        twins = per_invoice.get(invoice, 0) if c.get("status") == "succeeded" else 0
        if twins > 1:
            notes.append(f"one of {twins} succeeded charges for that invoice")
        if c.get("amount_refunded"):
            notes.append(f"{money(c.get('amount_refunded'), c.get('currency'))} refunded")
        if c.get("disputed"):
            notes.append("disputed")
        head = f"Charge {c['id']} of {money(c.get('amount'), c.get('currency'))} {story}"
        summary = "; ".join([head, *notes]) + "."
        data = _pick(c, "id customer amount amount_captured amount_refunded currency status "
                        "paid captured refunded disputed failure_code failure_message created "
                        "description")
        data.update(invoice=invoice, payment_intent=_ref_id(c.get("payment_intent")),
                    succeeded_charges_for_invoice=twins or None,
                    outcome=_pick(outcome, "type reason network_status advice_code seller_message"),
                    card=_pick(card, "brand last4 funding country exp_month exp_year")
                    if card else None)
        return self._evidence(c, f"Charge {c['id']}: {c.get('status')}", summary, data,
                              _link(c, f"payments/{c['id']}"))

    @operation("refunds", CustomerParams,
               "List refunds of a customer's recent charges (per refunded charge).")
    async def refunds(self, params: CustomerParams, attempt: Attempt) -> list[Evidence]:
        """Return one evidence item per refund of the customer's refunded charges."""
        page = await self.reader.list(attempt, "charges", {
            "customer": params.customer_id, "limit": params.limit})
        refunded = [c["id"] for c in page["data"] if c.get("amount_refunded") or c.get("refunded")]
        pages = await asyncio.gather(*(
            self.reader.list(attempt, "refunds", {"charge": charge, "limit": 100})
            for charge in refunded[:_REFUND_SCAN_CHARGES]))
        found = [r for p in pages for r in p["data"]]
        found.sort(key=lambda r: (r.get("created") or 0, r["id"]), reverse=True)
        return [self._refund(r) for r in found]

    def _refund(self, r: dict[str, Any]) -> Evidence:
        charge = _ref_id(r.get("charge"))
        reason = f" ({r['reason']})" if r.get("reason") else ""
        summary = (f"Refund {r['id']} of {money(r.get('amount'), r.get('currency'))} for charge "
                   f"{charge or 'unknown'} is {r.get('status')}{reason}, created "
                   f"{when(r.get('created'))}.")
        data = _pick(r, "id amount currency status reason created failure_reason")
        data.update(charge=charge, payment_intent=_ref_id(r.get("payment_intent")))
        return self._evidence(r, f"Refund {r['id']}: {r.get('status')}", summary, data,
                              _link(r, f"payments/{charge}" if charge else "payments"))

    async def _ping(self, attempt: Attempt) -> None:  # needs only the key's read permission
        await self.reader.list(attempt, "customers", {"limit": 1})

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections."""
        await self.reader.aclose()
