"""Money movements in Stripe: refunds and customer-balance credits, through the official SDK.

Idempotency: every request carries the action's key as Stripe's `Idempotency-Key`.
Stripe stores the first answer to a key for at least 24 hours and replays it for
any repeat (marked `Idempotent-Replayed: true`), so an attempt retried after a
lost answer, or a run resumed after a crash between the refund and the ledger
write, gets the first refund back instead of a second one. Beyond that window
the ledger is what prevents a repeat. The key is also written to the object's
metadata (`sleuth_key`), so a person can trace a refund to its action.

The SDK's own retries are off (the core resilience policy is the only retry
loop) and each call runs under the current attempt's timeouts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Literal

import stripe
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from stripe.params import CustomerBalanceTransactionCreateParams, RefundCreateParams

from connectors.stripe.client import StripeSession, translate
from core.domain import ActionType
from core.errors import BadResponseError, InvalidRequestError, SleuthError
from core.resilience import Attempt, ResiliencePolicy
from governance.effectors.base import (
    ActionParams,
    Applied,
    Effector,
    EffectorAction,
    WriteConflictError,
    parse_params,
)
from governance.effectors.ledger import Ledger


class StripeWriteConfig(BaseModel):
    """How to reach Stripe with a key that may write refunds and balance transactions.

    `api_key` should be a restricted key (`rk_…`) with write access to refunds and
    customers' balance transactions and nothing else; it is not the connector's
    read-only key. `max_amount` (minor units, e.g. cents) refuses larger refunds
    and credits whatever was approved.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr
    base_url: str | None = Field(None, max_length=2_000, description="None: Stripe's own API")
    api_version: str | None = Field(None, max_length=64)
    max_amount: int | None = Field(None, gt=0)


class RefundParams(ActionParams):
    """Which charge to refund, and how much of it (minor units; None: all that is left)."""

    charge_id: str = Field(pattern=r"^(ch|py)_[A-Za-z0-9]{1,64}$")
    amount: int | None = Field(None, gt=0)
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] | None = None


class CreditParams(ActionParams):
    """Whose balance to credit, by how much (minor units) and why."""

    customer_id: str = Field(pattern=r"^cus_[A-Za-z0-9]{1,64}$")
    amount: int = Field(gt=0)
    currency: str = Field("usd", pattern=r"^[a-z]{3}$")
    description: str | None = Field(None, max_length=350)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return None


class StripeWriter:
    """Creates refunds and balance transactions, one request per call."""

    def __init__(self, config: StripeWriteConfig) -> None:
        self._session = StripeSession(config.api_key, base_url=config.base_url,
                                      api_version=config.api_version)

    async def call(self, attempt: Attempt, what: str,
                   request: Callable[[stripe.StripeClient], Awaitable[stripe.StripeObject]],
                   ) -> tuple[dict[str, Any], bool]:
        """Make one SDK call; return the object as a dict and whether Stripe replayed it."""
        try:
            with self._session.attempt(attempt) as sdk:
                made = await request(sdk)
        except stripe.StripeError as exc:
            if exc.http_status == 409:  # the same key is in flight in another request
                raise WriteConflictError(f"stripe: {what}: idempotency key in use") from None
            error: SleuthError = translate(exc)
            raise error from None
        except (ValueError, TypeError, KeyError) as exc:
            raise BadResponseError(f"stripe: {what}: unreadable answer ({type(exc).__name__})"
                                   ) from None
        body = made.to_dict()
        if not isinstance(body.get("id"), str):
            raise BadResponseError(f"stripe: {what}: the answer has no id")
        last = made.last_response
        replayed = _header(last.headers if last else None, "idempotent-replayed") == "true"
        return body, replayed

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._session.aclose()


class StripeEffector(Effector):
    """Refunds charges and credits customer balances."""

    name = "stripe"
    action_types: ClassVar[frozenset[ActionType]] = frozenset({
        ActionType.ISSUE_REFUND, ActionType.APPLY_CREDIT})

    def __init__(self, config: StripeWriteConfig, *, policy: ResiliencePolicy, ledger: Ledger,
                 budget_s: float | None = None) -> None:
        super().__init__(policy=policy, ledger=ledger, budget_s=budget_s)
        self.config = config
        self.writer = StripeWriter(config)

    def _check_amount(self, amount: int | None) -> None:
        limit = self.config.max_amount
        if limit is None:
            return
        if amount is None:
            raise InvalidRequestError("stripe: a full refund needs an explicit amount under "
                                      "the configured max_amount")
        if amount > limit:
            raise InvalidRequestError(f"stripe: amount {amount} is over max_amount {limit}")

    async def _apply(self, action: EffectorAction, key: str, attempt: Attempt) -> Applied:
        metadata = {"sleuth_key": key, "investigation_id": action.investigation_id[:500]}
        if action.type is ActionType.ISSUE_REFUND:
            refund = parse_params(RefundParams, action)
            self._check_amount(refund.amount)
            params: RefundCreateParams = {"charge": refund.charge_id, "metadata": metadata}
            if refund.amount is not None:
                params["amount"] = refund.amount
            if refund.reason is not None:
                params["reason"] = refund.reason
            body, replayed = await self.writer.call(
                attempt, "create refund", lambda sdk: sdk.v1.refunds.create_async(
                    params=params, options={"idempotency_key": key}))
            return Applied(body["id"], f"refunded {body.get('amount')} {body.get('currency')} "
                                       f"of {refund.charge_id}", replayed)
        credit = parse_params(CreditParams, action)
        self._check_amount(credit.amount)
        # a negative balance transaction is a credit: it lowers what the customer owes
        txn: CustomerBalanceTransactionCreateParams = {
            "amount": -credit.amount, "currency": credit.currency, "metadata": metadata}
        if credit.description:
            txn["description"] = credit.description
        body, replayed = await self.writer.call(
            attempt, "create balance transaction",
            lambda sdk: sdk.v1.customers.balance_transactions.create_async(
                credit.customer_id, params=txn, options={"idempotency_key": key}))
        return Applied(body["id"], f"credited {credit.amount} {credit.currency} to "
                                   f"{credit.customer_id}", replayed)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self.writer.aclose()
