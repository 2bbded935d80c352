"""Policy decisions: what happens to one proposed action, decided by its type alone.

A proposed action comes from a model that read untrusted ticket text, so nothing in it
but its `type` (and, for financial actions, the amount being moved) is trusted: a
`level`, an `approvals_required` or any other field it carries is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from governance.taxonomy import Level, Role, Taxonomy

Outcome = Literal["execute", "needs_approval", "refuse"]


class PolicyDecision(BaseModel):
    """What governance decided for one proposed action, and why."""

    model_config = ConfigDict(frozen=True)

    action_type: str
    outcome: Outcome
    level: Level
    approver_roles: tuple[Role, ...] = ()
    approvals_required: int = 0
    reason_required: bool = False
    amount: int | None = None
    taxonomy_version: str
    why: str


def _amount(params: Any) -> int | None:
    """Return params.amount when it is a whole, non-negative number of minor units."""
    if not isinstance(params, Mapping):
        return None
    value = params.get("amount")
    # bool is an int in Python; True is not an amount
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _as_mapping(action: Mapping[str, Any] | BaseModel) -> Mapping[str, Any]:
    return action.model_dump() if isinstance(action, BaseModel) else action


def decide(action: Mapping[str, Any] | BaseModel, taxonomy: Taxonomy) -> PolicyDecision:
    """Decide what happens to a proposed action: execute, ask a person, or refuse."""
    fields = _as_mapping(action)
    action_type = fields.get("type")
    version = taxonomy.version
    if not isinstance(action_type, str) or not action_type:
        return PolicyDecision(action_type=str(action_type or ""), outcome="refuse",
                              level="forbidden", taxonomy_version=version,
                              why="the action has no type")
    policy = taxonomy.policy_for(action_type)
    if policy.level == "forbidden":
        why = (f"{action_type} is forbidden by taxonomy {version}" if policy.listed
               else f"{action_type} is not in taxonomy {version}, so it is forbidden")
        return PolicyDecision(action_type=action_type, outcome="refuse", level="forbidden",
                              taxonomy_version=version, why=why)
    if not policy.requires_approval:
        return PolicyDecision(action_type=action_type, outcome="execute", level=policy.level,
                              taxonomy_version=version,
                              why=f"{policy.level} actions run without approval")
    required, amount, why = 1, None, f"{policy.level} actions need a person's approval"
    if policy.level == "financial":
        amount = _amount(fields.get("params"))
        limit, ceiling = policy.dual_approval_above, policy.max_amount
        if amount is None:
            # without a readable amount we cannot tell which rule applies: the stricter one
            required = 2
            why = "financial action without a whole amount in minor units: two approvers"
        elif ceiling is not None and amount > ceiling:
            return PolicyDecision(action_type=action_type, outcome="refuse", level=policy.level,
                                  amount=amount, taxonomy_version=version,
                                  why=f"amount {amount} is above the limit {ceiling}")
        elif limit is not None and amount > limit:
            required = 2
            why = f"amount {amount} is above {limit}: two different approvers"
        else:
            why = f"financial action of {amount}: one approver with a written reason"
    return PolicyDecision(
        action_type=action_type, outcome="needs_approval", level=policy.level,
        approver_roles=policy.approver_roles, approvals_required=required,
        reason_required=policy.reason_required, amount=amount, taxonomy_version=version,
        why=why,
    )
