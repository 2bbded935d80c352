"""Timeouts, retries and circuit breakers: the policy around every outside call."""

from core.resilience.breaker import (
    BreakerEvents,
    BreakerState,
    BreakerStatus,
    BreakerStore,
    CircuitBreaker,
    Permit,
)
from core.resilience.policy import (
    Attempt,
    AttemptRecord,
    CallStats,
    Deadline,
    ResiliencePolicy,
    counts_against_breaker,
)
from core.resilience.stores import InMemoryBreakerStore, RedisBreakerStore

__all__ = [
    "Attempt",
    "AttemptRecord",
    "BreakerEvents",
    "BreakerState",
    "BreakerStatus",
    "BreakerStore",
    "CallStats",
    "CircuitBreaker",
    "Deadline",
    "InMemoryBreakerStore",
    "Permit",
    "RedisBreakerStore",
    "ResiliencePolicy",
    "counts_against_breaker",
]
