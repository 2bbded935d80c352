"""Rate limits per API token: a moving window from `limits`, in memory or shared in Redis.

With `settings.redis_url` set, every API replica counts in the same Redis, so a token gets
its limit across the fleet, not per process. If Redis cannot be reached, the limiter
counts in process memory and says so in the log (like the Redis circuit breaker does):
an outage of Redis must not take the API down, and each replica still limits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter

from core.errors import ConfigurationError, RateLimitedError
from core.settings import Settings
from core.telemetry import get_logger

log = get_logger("sleuth.api.ratelimit")
KEY_PREFIX = "sleuth-api"
REDIS_TIMEOUT_S = 0.5


def parse_limit(text: str) -> list[RateLimitItem]:
    """Parse `limits` notation ("600/minute", "10/second;600/minute"); refuse anything else."""
    try:
        items = parse_many(text)
    except ValueError as exc:
        raise ConfigurationError(f"service.rate_limit: {text!r} is not a rate limit ({exc}); "
                                 "write it like 600/minute", field="service.rate_limit") from None
    if not items:
        raise ConfigurationError("service.rate_limit is empty", field="service.rate_limit")
    return items


class TokenRateLimiter:
    """Counts requests per token name and refuses those over the limit."""

    def __init__(self, items: Sequence[RateLimitItem], *, redis_url: str | None = None,
                 key_prefix: str = KEY_PREFIX) -> None:
        self.items = list(items)
        # the synchronous storages: thread-safe and bound to no event loop
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._shared: MovingWindowRateLimiter | None = None
        if redis_url is not None:
            self._shared = MovingWindowRateLimiter(RedisStorage(
                redis_url, key_prefix=key_prefix, wrap_exceptions=True,
                socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S))
        self._degraded = False

    @property
    def shared(self) -> bool:
        """Say whether counts are shared through Redis."""
        return self._shared is not None

    async def check(self, key: str) -> None:
        """Count one request of `key`; raise RateLimitedError (with retry_after) over the limit."""
        if self._shared is not None:
            try:
                retry_after = await asyncio.to_thread(self._hit, self._shared, key)
            except StorageError as exc:
                if not self._degraded:
                    log.warning("rate_limit_degraded", error=str(exc)[:200],
                                detail="Redis unreachable; counting in process memory")
                self._degraded = True
            else:
                self._degraded = False
                self._raise_if_limited(retry_after)
                return
        self._raise_if_limited(self._hit(self._memory, key))

    def _hit(self, limiter: MovingWindowRateLimiter, key: str) -> float | None:
        """Count the request against every item; return seconds to wait when one is exhausted."""
        for item in self.items:
            if not limiter.hit(item, key):
                stats = limiter.get_window_stats(item, key)
                return max(1.0, stats.reset_time - time.time())
        return None

    @staticmethod
    def _raise_if_limited(retry_after: float | None) -> None:
        if retry_after is not None:
            raise RateLimitedError("too many requests for this token; slow down",
                                   retry_after=retry_after)


def build_rate_limiter(settings: Settings) -> TokenRateLimiter:
    """Return the limiter of `settings.service.rate_limit`, in Redis when redis_url is set."""
    items = parse_limit(settings.service.rate_limit)
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    return TokenRateLimiter(items, redis_url=redis_url)
