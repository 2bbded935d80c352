"""One contract for every breaker store, exercised through `CircuitBreaker`.

The same tests run on the in-process store and on the Redis store (db 15, a unique
key prefix per test, keys removed afterwards). Redis-only tests cover sharing across
separate clients (workers) and the degraded mode when Redis cannot be reached.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis

from core.errors import CircuitOpenError
from core.resilience.breaker import (
    BreakerEvents,
    BreakerState,
    BreakerStatus,
    BreakerStore,
    CircuitBreaker,
    Permit,
)
from core.resilience.stores import InMemoryBreakerStore, RedisBreakerStore
from core.settings import BreakerSettings
from sandbox.models import closed_port

CLOSED, OPEN, HALF_OPEN = BreakerStatus.CLOSED, BreakerStatus.OPEN, BreakerStatus.HALF_OPEN

CFG = BreakerSettings(failure_threshold=3, failure_rate_threshold=1.0, window_size=10,
                      min_calls=10, cooldown_s=30.0, probe_timeout_s=60.0)


class FakeClock:
    """A wall clock that moves only when told."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Backend:
    """Makes stores of one kind; Redis stores of one test share a unique prefix."""

    kind: str
    redis_url: str | None = None
    prefix: str = field(default_factory=lambda: f"sleuth-test:{uuid.uuid4().hex}")
    clients: list[Redis] = field(default_factory=list)
    _memory: InMemoryBreakerStore = field(default_factory=InMemoryBreakerStore)

    def client(self) -> Redis:
        assert self.redis_url is not None
        client = Redis.from_url(self.redis_url)
        self.clients.append(client)
        return client

    def store(self, *, separate: bool = False) -> BreakerStore:
        """Return a store; `separate` gives another Redis client (another worker)."""
        if self.kind == "memory":
            return self._memory
        client = self.client() if separate or not self.clients else self.clients[0]
        return RedisBreakerStore(client, prefix=self.prefix)

    async def aclose(self) -> None:
        if self.clients:
            keys = [k async for k in self.clients[0].scan_iter(match=f"{self.prefix}:*")]
            if keys:
                await self.clients[0].delete(*keys)
        for client in self.clients:
            await client.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "redis":
        made = Backend("redis", redis_url=request.getfixturevalue("redis_url"))
    else:
        made = Backend("memory")
    yield made
    await made.aclose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


Change = tuple[str, BreakerStatus, BreakerStatus]


def make_breaker(
    store: BreakerStore, clock: FakeClock, *, name: str = "upstream",
    cfg: BreakerSettings = CFG, changes: list[Change] | None = None,
) -> CircuitBreaker:
    events = BreakerEvents()
    if changes is not None:
        events.on_change.append(lambda n, old, new: changes.append((n, old, new)))
    return CircuitBreaker(name, cfg, store, clock=clock, events=events)


async def fail_times(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        permit = await breaker.acquire()
        await breaker.record(permit, failure=True)


async def open_breaker(breaker: CircuitBreaker) -> None:
    await fail_times(breaker, breaker.settings.failure_threshold)
    assert (await breaker.state()).status is OPEN


async def race(breaker: CircuitBreaker | list[CircuitBreaker], n: int = 20) -> list[object]:
    breakers = breaker if isinstance(breaker, list) else [breaker]
    return await asyncio.gather(
        *(breakers[i % len(breakers)].acquire() for i in range(n)), return_exceptions=True
    )


# --- the contract -------------------------------------------------------------------------------


async def test_unknown_breaker_is_closed(backend: Backend) -> None:
    assert await backend.store().load("never-used") == BreakerState()


async def test_opens_after_threshold_failures(backend: Backend, clock: FakeClock) -> None:
    breaker = make_breaker(backend.store(), clock)
    await fail_times(breaker, 2)
    state = await breaker.state()
    assert state.status is CLOSED
    assert state.consecutive_failures == 2
    clock.advance(1.0)
    await fail_times(breaker, 1)
    state = await breaker.state()
    assert state.status is OPEN
    assert state.opened_at == clock.now
    assert state.generation == 1


async def test_success_resets_consecutive_failures(backend: Backend, clock: FakeClock) -> None:
    breaker = make_breaker(backend.store(), clock)
    for _ in range(3):
        await fail_times(breaker, 2)
        await breaker.record(await breaker.acquire(), failure=False)
    state = await breaker.state()
    assert state.status is CLOSED
    assert state.consecutive_failures == 0
    assert state.window == (True, True, False) * 3


async def test_open_refuses_at_once_with_retry_after(backend: Backend, clock: FakeClock) -> None:
    breaker = make_breaker(backend.store(), clock, name="anthropic")
    await open_breaker(breaker)
    clock.advance(12.5)
    started = time.perf_counter()
    with pytest.raises(CircuitOpenError) as info:
        await breaker.acquire()
    assert time.perf_counter() - started < 0.2
    assert info.value.retry_after == pytest.approx(17.5)
    assert info.value.breaker == "anthropic"
    assert info.value.code == "circuit_open"
    assert not info.value.retryable
    clock.advance(17.0)  # 0.5 s short of the cooldown
    with pytest.raises(CircuitOpenError) as info:
        await breaker.acquire()
    assert info.value.retry_after == pytest.approx(0.5)
    assert (await breaker.state()).status is OPEN


async def test_exactly_one_probe_when_twenty_callers_race(
    backend: Backend, clock: FakeClock
) -> None:
    changes: list[Change] = []
    breaker = make_breaker(backend.store(), clock, changes=changes)
    await open_breaker(breaker)
    clock.advance(CFG.cooldown_s)
    results = await race(breaker, 20)
    permits = [r for r in results if isinstance(r, Permit)]
    refusals = [r for r in results if isinstance(r, CircuitOpenError)]
    assert len(permits) == 1, results
    assert permits[0].probe
    assert len(refusals) == 19
    assert all(r.retry_after == pytest.approx(CFG.probe_timeout_s) for r in refusals)
    state = await breaker.state()
    assert state.status is HALF_OPEN
    assert state.probe_started_at == clock.now
    assert changes.count(("upstream", OPEN, HALF_OPEN)) == 1


async def test_probe_success_closes(backend: Backend, clock: FakeClock) -> None:
    breaker = make_breaker(backend.store(), clock)
    await open_breaker(breaker)
    clock.advance(CFG.cooldown_s)
    probe = await breaker.acquire()
    assert probe.probe
    await breaker.record(probe, failure=False)
    state = await breaker.state()
    assert state == BreakerState(generation=1)
    permit = await breaker.acquire()
    assert not permit.probe


async def test_probe_failure_reopens_for_a_full_cooldown(
    backend: Backend, clock: FakeClock
) -> None:
    breaker = make_breaker(backend.store(), clock)
    await open_breaker(breaker)
    clock.advance(CFG.cooldown_s + 5)
    probe = await breaker.acquire()
    clock.advance(2.0)
    await breaker.record(probe, failure=True)
    state = await breaker.state()
    assert state.status is OPEN
    assert state.opened_at == clock.now
    assert state.generation == 2
    with pytest.raises(CircuitOpenError) as info:
        await breaker.acquire()
    assert info.value.retry_after == pytest.approx(CFG.cooldown_s)


async def test_lost_probe_is_replaced_after_its_lease(backend: Backend, clock: FakeClock) -> None:
    breaker = make_breaker(backend.store(), clock)
    await open_breaker(breaker)
    clock.advance(CFG.cooldown_s)
    lost = await breaker.acquire()
    clock.advance(CFG.probe_timeout_s - 1)
    with pytest.raises(CircuitOpenError) as info:
        await breaker.acquire()
    assert info.value.retry_after == pytest.approx(1.0)
    clock.advance(1)
    replacement = await breaker.acquire()
    assert replacement.probe
    assert replacement.generation == lost.generation
    await breaker.record(replacement, failure=False)
    assert (await breaker.state()).status is CLOSED


async def test_stale_report_does_not_change_state(backend: Backend, clock: FakeClock) -> None:
    breaker = make_breaker(backend.store(), clock)
    early = await breaker.acquire()  # let through while closed
    await open_breaker(breaker)
    before = await breaker.state()
    await breaker.record(early, failure=False)
    await breaker.record(early, failure=True)
    assert await breaker.state() == before


async def test_on_change_events_fire_in_order(backend: Backend, clock: FakeClock) -> None:
    changes: list[Change] = []
    breaker = make_breaker(backend.store(), clock, name="openai", changes=changes)
    await fail_times(breaker, 2)
    assert changes == []
    await fail_times(breaker, 1)
    clock.advance(CFG.cooldown_s)
    probe = await breaker.acquire()
    await breaker.record(probe, failure=True)
    clock.advance(CFG.cooldown_s)
    probe = await breaker.acquire()
    await breaker.record(probe, failure=False)
    await breaker.record(await breaker.acquire(), failure=False)  # no change, no event
    assert changes == [
        ("openai", CLOSED, OPEN),
        ("openai", OPEN, HALF_OPEN),
        ("openai", HALF_OPEN, OPEN),
        ("openai", OPEN, HALF_OPEN),
        ("openai", HALF_OPEN, CLOSED),
    ]


async def test_every_on_change_callback_is_called(backend: Backend, clock: FakeClock) -> None:
    seen: list[str] = []
    events = BreakerEvents(on_change=[lambda n, o, w: seen.append(f"a:{o}>{w}"),
                                      lambda n, o, w: seen.append(f"b:{o}>{w}")])
    breaker = CircuitBreaker("x", CFG, backend.store(), clock=clock, events=events)
    await open_breaker(breaker)
    assert seen == ["a:closed>open", "b:closed>open"]


async def test_reset_forgets_the_state(backend: Backend, clock: FakeClock) -> None:
    store = backend.store()
    breaker = make_breaker(store, clock)
    other = make_breaker(store, clock, name="other")
    await open_breaker(breaker)
    await open_breaker(other)
    await store.reset("upstream")
    assert await breaker.state() == BreakerState()
    permit = await breaker.acquire()
    assert not permit.probe
    assert (await other.state()).status is OPEN, "reset touched another breaker"
    await store.reset("never-used")  # no error


async def test_two_breaker_objects_on_one_store_share_state(
    backend: Backend, clock: FakeClock
) -> None:
    store = backend.store()
    first = make_breaker(store, clock)
    second = make_breaker(store, clock)
    stranger = make_breaker(store, clock, name="unrelated")
    await fail_times(first, 2)
    await fail_times(second, 1)
    with pytest.raises(CircuitOpenError):
        await first.acquire()
    with pytest.raises(CircuitOpenError):
        await second.acquire()
    assert not (await stranger.acquire()).probe
    clock.advance(CFG.cooldown_s)
    results = await race([first, second], 20)
    assert sum(isinstance(r, Permit) for r in results) == 1
    probe = next(r for r in results if isinstance(r, Permit))
    await second.record(probe, failure=False)
    assert (await first.state()).status is CLOSED


async def test_concurrent_reports_are_not_lost(backend: Backend, clock: FakeClock) -> None:
    cfg = BreakerSettings(failure_threshold=100, window_size=100, min_calls=100)
    breaker = make_breaker(backend.store(), clock, cfg=cfg)
    permits = [await breaker.acquire() for _ in range(30)]
    await asyncio.gather(*(breaker.record(p, failure=True) for p in permits))
    state = await breaker.state()
    assert state.consecutive_failures == 30
    assert len(state.window) == 30


# --- Redis only ---------------------------------------------------------------------------------


@pytest.fixture
async def redis_backend(redis_url: str) -> AsyncIterator[Backend]:
    made = Backend("redis", redis_url=redis_url)
    yield made
    await made.aclose()


@pytest.mark.redis
async def test_two_workers_with_separate_clients_share_state(
    redis_backend: Backend, clock: FakeClock
) -> None:
    store_a = redis_backend.store(separate=True)
    store_b = redis_backend.store(separate=True)
    worker_a = make_breaker(store_a, clock)
    worker_b = make_breaker(store_b, clock)
    assert redis_backend.clients[0] is not redis_backend.clients[1]
    await fail_times(worker_a, 2)
    await fail_times(worker_b, 1)
    with pytest.raises(CircuitOpenError):
        await worker_b.acquire()
    with pytest.raises(CircuitOpenError):
        await worker_a.acquire()
    clock.advance(CFG.cooldown_s)
    results = await race([worker_a, worker_b], 20)
    permits = [r for r in results if isinstance(r, Permit)]
    assert len(permits) == 1
    await worker_a.record(permits[0], failure=False)
    assert (await worker_b.state()).status is CLOSED
    assert isinstance(store_a, RedisBreakerStore)
    assert isinstance(store_b, RedisBreakerStore)
    assert not store_a.degraded
    assert not store_b.degraded


@pytest.mark.redis
async def test_state_is_stored_as_json_with_a_ttl(redis_backend: Backend, clock: FakeClock) -> None:
    client = redis_backend.client()
    store = RedisBreakerStore(client, prefix=redis_backend.prefix, ttl_s=600)
    breaker = make_breaker(store, clock, name="tier-a")
    await open_breaker(breaker)
    key = f"{redis_backend.prefix}:tier-a"
    raw = await client.get(key)
    assert raw is not None
    assert BreakerState.from_json(json.loads(raw)) == await breaker.state()
    assert 0 < await client.ttl(key) <= 600
    await store.reset("tier-a")
    assert await client.exists(key) == 0


@pytest.mark.redis
async def test_concurrent_reports_from_two_workers_are_not_lost(
    redis_backend: Backend, clock: FakeClock
) -> None:
    cfg = BreakerSettings(failure_threshold=100, window_size=100, min_calls=100)
    workers = [make_breaker(redis_backend.store(separate=True), clock, cfg=cfg) for _ in range(2)]
    permits = [await workers[0].acquire() for _ in range(40)]
    await asyncio.gather(
        *(workers[i % 2].record(p, failure=True) for i, p in enumerate(permits))
    )
    assert (await workers[1].state()).consecutive_failures == 40


async def test_unreachable_redis_degrades_to_local_state(clock: FakeClock) -> None:
    client = Redis.from_url(f"redis://127.0.0.1:{closed_port()}/15", socket_connect_timeout=0.5)
    try:
        store = RedisBreakerStore(client, prefix=f"sleuth-test:{uuid.uuid4().hex}")
        assert store.degraded is False
        changes: list[Change] = []
        breaker = make_breaker(store, clock, changes=changes)
        started = time.perf_counter()
        permit = await breaker.acquire()
        assert store.degraded is True
        await breaker.record(permit, failure=True)
        await fail_times(breaker, 2)
        state = await breaker.state()
        assert state.status is OPEN
        with pytest.raises(CircuitOpenError):
            await breaker.acquire()
        clock.advance(CFG.cooldown_s)
        results = await race(breaker, 20)
        assert sum(isinstance(r, Permit) for r in results) == 1
        await store.reset("upstream")
        assert await breaker.state() == BreakerState()
        assert store.degraded is True
        assert changes == [("upstream", CLOSED, OPEN), ("upstream", OPEN, HALF_OPEN)]
        assert time.perf_counter() - started < 5.0
    finally:
        await client.aclose()
