"""Prometheus metrics of sleuth. Label values come from fixed sets, never from secrets."""

from __future__ import annotations

from functools import lru_cache

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from core.resilience.breaker import BreakerStatus

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_BREAKER_VALUE = {BreakerStatus.CLOSED: 0, BreakerStatus.HALF_OPEN: 1, BreakerStatus.OPEN: 2}


class Metrics:
    """All metrics, registered on one registry (a fresh one per test, the default in a process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.model_call_seconds = Histogram(
            "sleuth_model_call_seconds", "Latency of model calls, retries included.",
            ["tier", "provider", "outcome"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.model_calls = Counter(
            "sleuth_model_calls", "Model calls by tier, provider and outcome code.",
            ["tier", "provider", "code"], registry=r,
        )
        self.model_tokens = Counter(
            "sleuth_model_tokens", "Tokens by tier, provider and kind.",
            ["tier", "provider", "kind"], registry=r,
        )
        self.model_cost_usd = Counter(
            "sleuth_model_cost_usd", "Cost of model calls in USD.", ["tier", "provider"],
            registry=r,
        )
        self.gateway_outcomes = Counter(
            "sleuth_gateway_outcomes", "Gateway requests by the tier that served them.",
            ["tier"], registry=r,
        )
        self.attempt_seconds = Histogram(
            "sleuth_attempt_seconds", "Latency of single attempts of guarded calls.",
            ["component", "outcome"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.connector_call_seconds = Histogram(
            "sleuth_connector_call_seconds", "Latency of connector operations, retries included.",
            ["connector", "operation", "outcome"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.connector_calls = Counter(
            "sleuth_connector_calls", "Connector operations by outcome code.",
            ["connector", "operation", "code"], registry=r,
        )
        self.errors = Counter(
            "sleuth_errors", "Errors by component and stable error code.",
            ["component", "code"], registry=r,
        )
        self.breaker_state = Gauge(
            "sleuth_breaker_state", "Breaker state: 0 closed, 1 half-open, 2 open.",
            ["breaker"], registry=r,
        )
        self.breaker_transitions = Counter(
            "sleuth_breaker_transitions", "Breaker state changes.", ["breaker", "to"],
            registry=r,
        )

    def breaker_changed(self, name: str, old: BreakerStatus, new: BreakerStatus) -> None:
        """Record a breaker's change of state."""
        self.breaker_state.labels(breaker=name).set(_BREAKER_VALUE[new])
        self.breaker_transitions.labels(breaker=name, to=new.value).inc()

    def render(self) -> bytes:
        """Return the metrics in Prometheus text format."""
        return generate_latest(self.registry)


@lru_cache(maxsize=1)
def process_metrics() -> Metrics:
    """Return the process-wide metrics, created on first use."""
    from prometheus_client import REGISTRY

    return Metrics(REGISTRY)
