"""Which tiers may serve a request, in order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from core.llm.types import ModelRequest


class RoutableTier(Protocol):
    """What the router needs to know of a tier."""

    @property
    def name(self) -> str: ...

    @property
    def keeps_data_in_house(self) -> bool: ...


TierT = TypeVar("TierT", bound=RoutableTier)


def plan(tiers: Sequence[TierT], request: ModelRequest) -> list[tuple[TierT, str | None]]:
    """Return each tier with the reason it is skipped for this request (None: eligible)."""
    steps: list[tuple[TierT, str | None]] = []
    for tier in tiers:
        if request.sensitive and not tier.keeps_data_in_house:
            steps.append((tier, "not_in_house"))
        else:
            steps.append((tier, None))
    return steps
