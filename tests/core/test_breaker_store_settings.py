"""The breaker store follows the settings: in process, or shared in Redis."""

from __future__ import annotations

import pytest

from core.resilience import CircuitBreaker, InMemoryBreakerStore, RedisBreakerStore
from core.resilience.factory import breaker_store_from_settings
from core.settings import BreakerSettings, load_settings


def test_memory_is_the_default() -> None:
    assert isinstance(breaker_store_from_settings(load_settings(None)), InMemoryBreakerStore)


@pytest.mark.redis
async def test_redis_store_is_shared_between_two_workers(redis_url: str) -> None:
    settings = load_settings(None, breaker_backend="redis", redis_url=redis_url)
    first, second = breaker_store_from_settings(settings), breaker_store_from_settings(settings)
    assert isinstance(first, RedisBreakerStore) and isinstance(second, RedisBreakerStore)
    config = BreakerSettings(failure_threshold=1, cooldown_s=60)
    name = "test:shared-from-settings"
    await first.reset(name)
    worker_a = CircuitBreaker(name, config, first)
    worker_b = CircuitBreaker(name, config, second)
    permit = await worker_a.acquire()
    await worker_a.record(permit, failure=True)
    assert (await worker_b.state()).status == "open"
    await first.reset(name)
