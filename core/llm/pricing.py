"""Cost of model calls from the price table in settings."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from core.llm.types import Usage
from core.settings import ModelPrice

_PER = Decimal(1_000_000)


class PriceTable:
    """Looks up a model's prices (exact name, then longest matching prefix)."""

    def __init__(self, prices: Mapping[str, ModelPrice]) -> None:
        self._prices = dict(prices)

    def price(self, model: str) -> ModelPrice | None:
        """Return the price of `model`, or None when the table has none."""
        if model in self._prices:
            return self._prices[model]
        # dated snapshots ("gpt-4.1-2025-04-14") are priced like their family
        matches = [name for name in self._prices if model.startswith(name + "-")]
        return self._prices[max(matches, key=len)] if matches else None

    def cost(self, model: str, usage: Usage) -> Decimal:
        """Return the cost in USD of `usage` on `model` (0 when the model has no price)."""
        price = self.price(model)
        if price is None:
            return Decimal(0)
        total = (
            usage.input_tokens * price.input
            + usage.output_tokens * price.output
            + usage.cache_read_tokens * price.cache_read
            + usage.cache_write_tokens * price.cache_write
        )
        return total / _PER
