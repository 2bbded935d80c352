"""Breaker stores: in-process for one worker, Redis when several workers share breakers."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, WatchError

from core.resilience.breaker import BreakerState, BreakerStore


class InMemoryBreakerStore(BreakerStore):
    """Keeps states in this process; safe across threads and event loops."""

    def __init__(self) -> None:
        self._states: dict[str, BreakerState] = {}
        self._lock = threading.Lock()

    async def transact(
        self, name: str, fn: Callable[[BreakerState], tuple[BreakerState, Any]]
    ) -> Any:
        with self._lock:
            new, result = fn(self._states.get(name, BreakerState()))
            self._states[name] = new
        return result

    async def load(self, name: str) -> BreakerState:
        with self._lock:
            return self._states.get(name, BreakerState())

    async def reset(self, name: str) -> None:
        with self._lock:
            self._states.pop(name, None)


class RedisBreakerStore(BreakerStore):
    """Keeps states in Redis under `prefix:name`, updated with optimistic transactions.

    If Redis cannot be reached the store carries on with process-local state
    (`degraded` is then true) rather than blocking every call behind it.
    """

    def __init__(self, client: Redis, *, prefix: str = "sleuth:breaker", ttl_s: int = 86_400,
                 max_conflicts: int = 50) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._max_conflicts = max_conflicts
        self._fallback = InMemoryBreakerStore()
        self.degraded = False

    def _key(self, name: str) -> str:
        return f"{self._prefix}:{name}"

    @staticmethod
    def _decode(raw: bytes | str | None) -> BreakerState:
        if raw is None:
            return BreakerState()
        return BreakerState.from_json(json.loads(raw))

    async def transact(
        self, name: str, fn: Callable[[BreakerState], tuple[BreakerState, Any]]
    ) -> Any:
        try:
            result = await self._transact(name, fn)
        except RedisError:
            self.degraded = True
            return await self._fallback.transact(name, fn)
        self.degraded = False
        return result

    async def _transact(
        self, name: str, fn: Callable[[BreakerState], tuple[BreakerState, Any]]
    ) -> Any:
        key = self._key(name)
        for _ in range(self._max_conflicts):
            async with self._client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    state = self._decode(await pipe.get(key))
                    new, result = fn(state)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, json.dumps(new.to_json()), ex=self._ttl_s)
                    await pipe.execute()
                    return result
                except WatchError:
                    continue  # another worker changed it first: read again
        raise RuntimeError(f"breaker {name!r}: too many concurrent updates in Redis")

    async def load(self, name: str) -> BreakerState:
        try:
            return self._decode(await self._client.get(self._key(name)))
        except RedisError:
            self.degraded = True
            return await self._fallback.load(name)

    async def reset(self, name: str) -> None:
        await self._fallback.reset(name)
        try:
            await self._client.delete(self._key(name))
        except RedisError:
            self.degraded = True
