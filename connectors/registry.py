"""The explicit registry of connectors, and how they are built from settings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from connectors.base import Connector, ConnectorConfig, ConnectorFailure, Health, ToolResult
from connectors.clickhouse.connector import ClickHouseConnector
from connectors.docs.connector import DocsConnector
from connectors.github.connector import GitHubConnector
from connectors.linear.connector import LinearConnector
from connectors.settings import ConnectorSettings
from connectors.statuspage.connector import StatuspageConnector
from connectors.stripe.connector import StripeConnector
from core.domain import SourceName
from core.resilience import (
    BreakerEvents,
    BreakerStore,
    CircuitBreaker,
    InMemoryBreakerStore,
    ResiliencePolicy,
)
from core.settings import ResilienceSettings
from core.telemetry import Metrics

REGISTRY: dict[SourceName, type[Connector]] = {
    "clickhouse": ClickHouseConnector,
    "stripe": StripeConnector,
    "github": GitHubConnector,
    "linear": LinearConnector,
    "statuspage": StatuspageConnector,
    "docs": DocsConnector,
}


class DisabledConnector:
    """Stands in for a connector that is switched off or missing settings."""

    def __init__(self, name: SourceName, reason: str) -> None:
        self.name = name
        self.reason = reason

    async def run(self, operation: str, params: Any = None, *,
                  budget_s: float | None = None) -> ToolResult:
        """Return a `disabled` failure without calling anything."""
        return ToolResult(source=self.name, operation=operation, error=ConnectorFailure(
            kind="disabled", code="connector_disabled", message=self.reason))

    async def health(self) -> Health:
        """Report the connector as disabled, with the reason."""
        return Health(source=self.name, status="disabled", detail=self.reason)

    async def aclose(self) -> None:
        """Nothing to release."""


def build_connector(
    name: SourceName,
    config: ConnectorConfig,
    *,
    resilience: ResilienceSettings,
    metrics: Metrics,
    breaker_store: BreakerStore | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Connector | DisabledConnector:
    """Build one connector with its own breaker and policy (or a disabled stand-in)."""
    if not config.enabled:
        return DisabledConnector(name, "disabled in settings")
    missing = config.missing()
    if missing:
        return DisabledConnector(name, f"missing settings: {', '.join(missing)}")
    policy_settings = config.resilience or resilience
    breaker = CircuitBreaker(
        f"connector:{name}", policy_settings.breaker, breaker_store or InMemoryBreakerStore(),
        events=BreakerEvents(on_change=[metrics.breaker_changed]),
    )
    policy = ResiliencePolicy(
        f"connector:{name}", policy_settings, breaker,
        on_attempt=lambda n, rec: metrics.attempt_seconds.labels(n, rec.outcome).observe(
            rec.duration_s),
    )
    return REGISTRY[name](config, policy=policy, metrics=metrics, clock=clock)


def build_connectors(
    settings: ConnectorSettings,
    *,
    resilience: ResilienceSettings,
    metrics: Metrics,
    breaker_store: BreakerStore | None = None,
    clock: Callable[[], datetime] | None = None,
) -> dict[SourceName, Connector | DisabledConnector]:
    """Build every registered connector from settings, sharing one breaker store."""
    store = breaker_store or InMemoryBreakerStore()
    return {
        name: build_connector(name, settings.for_source(name), resilience=resilience,
                              metrics=metrics, breaker_store=store, clock=clock)
        for name in REGISTRY
    }
