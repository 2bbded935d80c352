"""Choose the breaker store the settings ask for."""

from __future__ import annotations

from redis.asyncio import Redis

from core.errors import ConfigurationError
from core.resilience.breaker import BreakerStore
from core.resilience.stores import InMemoryBreakerStore, RedisBreakerStore
from core.settings import Settings


def breaker_store_from_settings(settings: Settings) -> BreakerStore:
    """Return an in-process store, or a Redis one shared by every worker."""
    if settings.breaker_backend == "memory":
        return InMemoryBreakerStore()
    if settings.redis_url is None:  # the settings validator already refuses this
        raise ConfigurationError("breaker_backend=redis needs SLEUTH_REDIS_URL")
    # the URL may hold a password: unwrapped here, where the client is built, and nowhere else
    return RedisBreakerStore(Redis.from_url(settings.redis_url.get_secret_value()))
