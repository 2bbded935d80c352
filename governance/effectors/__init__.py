"""Effectors: the only code that writes to outside systems, each approved action once.

`build_effectors` assembles the configured ones into an `EffectorSet`; a system
left unconfigured has no effector, and its actions fail as `unsupported_action`.
"""

from __future__ import annotations

from collections.abc import Callable

from core.resilience import ResiliencePolicy
from governance.effectors.base import (
    Effector,
    EffectorAction,
    EffectorSet,
    EffectResult,
    LedgerUnavailableError,
    idempotency_key,
)
from governance.effectors.ledger import Ledger, create_ledger_table
from governance.effectors.linear import (
    KnownIssueLinker,
    LinearEffector,
    LinearWriteConfig,
    LinearWriter,
)
from governance.effectors.paging import PagingConfig, PagingEffector
from governance.effectors.stripe import StripeEffector, StripeWriteConfig
from governance.effectors.zendesk import ZendeskClient, ZendeskConfig, ZendeskEffector


def build_effectors(
    ledger: Ledger,
    policy_for: Callable[[str], ResiliencePolicy],
    *,
    zendesk: ZendeskConfig | None = None,
    stripe: StripeWriteConfig | None = None,
    linear: LinearWriteConfig | None = None,
    paging: PagingConfig | None = None,
    budget_s: float | None = None,
) -> EffectorSet:
    """Build an effector for each configured system; `policy_for(name)` gives its policy."""
    made: list[Effector] = []
    if zendesk is not None:
        made.append(ZendeskEffector(zendesk, policy=policy_for("effector:zendesk"),
                                    ledger=ledger, budget_s=budget_s))
    if stripe is not None:
        made.append(StripeEffector(stripe, policy=policy_for("effector:stripe"),
                                   ledger=ledger, budget_s=budget_s))
    if linear is not None:
        made.append(LinearEffector(linear, policy=policy_for("effector:linear"),
                                   ledger=ledger, budget_s=budget_s))
        if zendesk is not None:
            # links are notes on the ticket, checked against the tracker first
            made.append(KnownIssueLinker(LinearWriter(linear), ZendeskClient(zendesk),
                                         policy=policy_for("effector:linear_link"),
                                         ledger=ledger, budget_s=budget_s))
    if paging is not None:
        made.append(PagingEffector(paging, policy=policy_for("effector:paging"),
                                   ledger=ledger, budget_s=budget_s))
    return EffectorSet(made)


__all__ = [
    "EffectResult",
    "Effector",
    "EffectorAction",
    "EffectorSet",
    "KnownIssueLinker",
    "Ledger",
    "LedgerUnavailableError",
    "LinearEffector",
    "LinearWriteConfig",
    "PagingConfig",
    "PagingEffector",
    "StripeEffector",
    "StripeWriteConfig",
    "ZendeskConfig",
    "ZendeskEffector",
    "build_effectors",
    "create_ledger_table",
    "idempotency_key",
]
