"""Tests of ResiliencePolicy: retries, backoff, Retry-After, budget, timeouts, breaker, stats."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from core.errors import (
    AuthError,
    BadResponseError,
    CircuitOpenError,
    ConnectionFailedError,
    ConnectTimeoutError,
    DeadlineExceededError,
    InvalidRequestError,
    NotFoundError,
    OutputSchemaError,
    RateLimitedError,
    ResponseTimeoutError,
    SleuthError,
    StreamStalledError,
    UpstreamServerError,
)
from core.resilience import (
    Attempt,
    AttemptRecord,
    BreakerEvents,
    BreakerStatus,
    CallStats,
    CircuitBreaker,
    Deadline,
    InMemoryBreakerStore,
    ResiliencePolicy,
    counts_against_breaker,
)
from core.settings import BreakerSettings, ResilienceSettings, RetrySettings, TimeoutSettings

CLOSED, OPEN, HALF_OPEN = BreakerStatus.CLOSED, BreakerStatus.OPEN, BreakerStatus.HALF_OPEN


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self, start: float = 500.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sleeper:
    """A sleep that records each wait and moves the fake clock instead of waiting."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)


Step = Any  # a value to return, an exception to raise, or an async callable to await


class Script:
    """An operation that plays a scripted list of results and exceptions, one per call."""

    def __init__(self, *steps: Step, clock: FakeClock | None = None, takes: float = 0.0) -> None:
        self.steps = list(steps)
        self.attempts: list[Attempt] = []
        self.clock = clock
        self.takes = takes

    @property
    def calls(self) -> int:
        return len(self.attempts)

    async def __call__(self, attempt: Attempt) -> Any:
        self.attempts.append(attempt)
        assert self.steps, "the operation was called more often than scripted"
        step = self.steps.pop(0)
        if self.clock is not None:
            self.clock.advance(self.takes)
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            return await step()
        return step


async def hang() -> None:
    await asyncio.sleep(10)


def resilience(
    *, max_attempts: int = 3, initial: float = 0.1, max_backoff: float = 1.0,
    jitter_s: float = 0.2, connect: float = 1.0, response: float = 10.0, budget: float = 60.0,
    threshold: int = 100, cooldown: float = 30.0,
) -> ResilienceSettings:
    return ResilienceSettings(
        timeouts=TimeoutSettings(connect_s=connect, response_s=response, total_budget_s=budget),
        retry=RetrySettings(max_attempts=max_attempts, initial_backoff_s=initial,
                            max_backoff_s=max_backoff, jitter_s=jitter_s),
        breaker=BreakerSettings(failure_threshold=threshold, cooldown_s=cooldown,
                                window_size=50, min_calls=50),
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeper(clock: FakeClock) -> Sleeper:
    return Sleeper(clock)


@pytest.fixture
def make_policy(
    clock: FakeClock, sleeper: Sleeper
) -> Callable[..., ResiliencePolicy]:
    def factory(settings: ResilienceSettings | None = None, breaker: CircuitBreaker | None = None,
                **kw: Any) -> ResiliencePolicy:
        return ResiliencePolicy("tier-a", settings or resilience(), breaker, clock=clock,
                                sleep=sleeper, jitter=lambda: 0.5, **kw)
    return factory


def make_breaker(
    clock: FakeClock, *, threshold: int = 2, cooldown: float = 30.0,
    changes: list[tuple[BreakerStatus, BreakerStatus]] | None = None,
) -> CircuitBreaker:
    events = BreakerEvents()
    if changes is not None:
        events.on_change.append(lambda _name, old, new: changes.append((old, new)))
    cfg = BreakerSettings(failure_threshold=threshold, cooldown_s=cooldown, window_size=50,
                          min_calls=50)
    return CircuitBreaker("tier-a", cfg, InMemoryBreakerStore(), clock=clock, events=events)


TRANSIENT: list[Callable[[], SleuthError]] = [
    lambda: UpstreamServerError("503", status=503),
    lambda: RateLimitedError("429"),
    lambda: ConnectionFailedError("reset"),
    lambda: ResponseTimeoutError("slow"),
    lambda: ConnectTimeoutError("connect"),
    lambda: StreamStalledError("stall"),
]
TRANSIENT_IDS = ["upstream", "rate_limited", "connection", "response_timeout", "connect_timeout",
                 "stalled"]
PERMANENT: list[Callable[[], SleuthError]] = [
    lambda: AuthError("401"),
    lambda: InvalidRequestError("400"),
    lambda: NotFoundError("404"),
    lambda: OutputSchemaError("schema"),
    lambda: BadResponseError("garbage"),
]
PERMANENT_IDS = ["auth", "invalid", "not_found", "schema", "bad_response"]

Factory = Callable[..., ResiliencePolicy]


# --- success and retries ------------------------------------------------------------------------


async def test_first_success_returns_at_once(make_policy: Factory, sleeper: Sleeper) -> None:
    op = Script("answer")
    stats = CallStats()
    assert await make_policy().run(op, stats=stats) == "answer"
    assert op.calls == 1
    assert sleeper.waits == []
    attempt = op.attempts[0]
    assert attempt.number == 1
    assert attempt.timeout_s == pytest.approx(11.0)  # connect + response, within the budget
    assert attempt.connect_timeout_s == pytest.approx(1.0)
    assert attempt.deadline.budget_s == 60.0
    assert [a.outcome for a in stats.attempts] == ["ok"]
    assert stats.retries == 0


@pytest.mark.parametrize("error", TRANSIENT, ids=TRANSIENT_IDS)
async def test_transient_errors_are_retried_until_success(
    make_policy: Factory, sleeper: Sleeper, error: Callable[[], SleuthError]
) -> None:
    op = Script(error(), error(), "answer")
    assert await make_policy(resilience(max_attempts=3)).run(op) == "answer"
    assert op.calls == 3
    assert len(sleeper.waits) == 2
    assert [a.number for a in op.attempts] == [1, 2, 3]


@pytest.mark.parametrize("error", TRANSIENT, ids=TRANSIENT_IDS)
async def test_transient_errors_stop_at_max_attempts(
    make_policy: Factory, sleeper: Sleeper, error: Callable[[], SleuthError]
) -> None:
    last = error()
    op = Script(error(), error(), error(), last, "never")
    with pytest.raises(type(last)) as info:
        await make_policy(resilience(max_attempts=4)).run(op)
    assert info.value is last, "the last attempt's error is raised as it is"
    assert op.calls == 4
    assert len(sleeper.waits) == 3


@pytest.mark.parametrize("error", PERMANENT, ids=PERMANENT_IDS)
async def test_permanent_errors_are_never_retried(
    make_policy: Factory, sleeper: Sleeper, error: Callable[[], SleuthError]
) -> None:
    first = error()
    op = Script(first, "never")
    stats = CallStats()
    with pytest.raises(type(first)) as info:
        await make_policy(resilience(max_attempts=5)).run(op, stats=stats)
    assert info.value is first
    assert op.calls == 1
    assert sleeper.waits == []
    assert [a.outcome for a in stats.attempts] == [first.code]


async def test_unexpected_exceptions_are_not_retried(
    make_policy: Factory, sleeper: Sleeper
) -> None:
    op = Script(ValueError("bug"), "never")
    stats = CallStats()
    with pytest.raises(ValueError, match="bug"):
        await make_policy().run(op, stats=stats)
    assert op.calls == 1
    assert sleeper.waits == []
    assert [a.outcome for a in stats.attempts] == ["unexpected"]


async def test_max_attempts_one_means_no_retry(make_policy: Factory, sleeper: Sleeper) -> None:
    op = Script(UpstreamServerError(), "never")
    with pytest.raises(UpstreamServerError):
        await make_policy(resilience(max_attempts=1)).run(op)
    assert op.calls == 1
    assert sleeper.waits == []


# --- backoff and Retry-After --------------------------------------------------------------------


async def test_exponential_backoff_with_cap_and_jitter(
    make_policy: Factory, sleeper: Sleeper
) -> None:
    settings = resilience(max_attempts=6, initial=0.1, max_backoff=0.5, jitter_s=0.2)
    op = Script(*(UpstreamServerError() for _ in range(6)))
    with pytest.raises(UpstreamServerError):
        await make_policy(settings).run(op)
    # initial * 2^(n-1) capped at max_backoff, plus jitter (0.5) * jitter_s (0.2)
    assert sleeper.waits == pytest.approx([0.1 + 0.1, 0.2 + 0.1, 0.4 + 0.1, 0.5 + 0.1, 0.5 + 0.1])


def test_backoff_formula() -> None:
    settings = resilience(initial=0.25, max_backoff=3.0, jitter_s=0.4)
    for jitter, expected in [(0.0, [0.25, 0.5, 1.0, 2.0, 3.0, 3.0]),
                             (1.0, [0.65, 0.9, 1.4, 2.4, 3.4, 3.4])]:
        policy = ResiliencePolicy("p", settings, jitter=lambda j=jitter: j)
        assert [policy.backoff(n) for n in range(1, 7)] == pytest.approx(expected)


async def test_retry_after_is_honoured_exactly(make_policy: Factory, sleeper: Sleeper) -> None:
    op = Script(RateLimitedError(retry_after=2.5), RateLimitedError(retry_after=0.75),
                RateLimitedError(retry_after=0.0), "answer")
    assert await make_policy(resilience(max_attempts=4, max_backoff=0.5)).run(op) == "answer"
    assert sleeper.waits == [2.5, 0.75, 0.0]  # no jitter, no cap


async def test_rate_limit_without_retry_after_uses_backoff(
    make_policy: Factory, sleeper: Sleeper
) -> None:
    op = Script(RateLimitedError(), "answer")
    assert await make_policy(resilience(initial=0.3, jitter_s=0.2)).run(op) == "answer"
    assert sleeper.waits == pytest.approx([0.3 + 0.1])


async def test_retry_after_beyond_the_budget_is_not_waited_for(
    make_policy: Factory, sleeper: Sleeper
) -> None:
    limited = RateLimitedError(retry_after=30.0)
    op = Script(limited, "never")
    with pytest.raises(RateLimitedError) as info:
        await make_policy(resilience(budget=10.0)).run(op)
    assert info.value is limited
    assert info.value.retry_after == 30.0
    assert op.calls == 1
    assert sleeper.waits == []


async def test_retry_after_is_compared_with_what_is_left_of_the_budget(
    make_policy: Factory, sleeper: Sleeper, clock: FakeClock
) -> None:
    # 6 s of a 10 s budget are spent by the attempt: 4 s are left, a 4 s wait does not fit
    op = Script(RateLimitedError(retry_after=4.0), "never", clock=clock, takes=6.0)
    with pytest.raises(RateLimitedError):
        await make_policy(resilience(budget=10.0)).run(op)
    assert sleeper.waits == []
    # ... but 3.5 s does, and the next attempt gets only what is left
    op = Script(RateLimitedError(retry_after=3.5), "answer", clock=clock, takes=6.0)
    assert await make_policy(resilience(budget=10.0)).run(op) == "answer"
    assert sleeper.waits == [3.5]
    assert op.attempts[1].timeout_s == pytest.approx(0.5)
    assert op.attempts[1].connect_timeout_s == pytest.approx(0.5)


async def test_backoff_beyond_the_budget_ends_the_call(
    make_policy: Factory, sleeper: Sleeper, clock: FakeClock
) -> None:
    op = Script(UpstreamServerError(), "never", clock=clock, takes=9.9)
    with pytest.raises(UpstreamServerError):
        await make_policy(resilience(budget=10.0, initial=0.2)).run(op)
    assert op.calls == 1
    assert sleeper.waits == []


async def test_budget_override_per_call(make_policy: Factory) -> None:
    op = Script("answer")
    await make_policy(resilience(budget=60.0)).run(op, budget_s=2.0)
    assert op.attempts[0].deadline.budget_s == 2.0
    assert op.attempts[0].timeout_s == pytest.approx(2.0)


async def test_fake_time_never_exceeds_budget(
    make_policy: Factory, clock: FakeClock
) -> None:
    started = clock.now
    op = Script(*(UpstreamServerError() for _ in range(20)), clock=clock, takes=0.7)
    with pytest.raises(UpstreamServerError):
        await make_policy(resilience(max_attempts=20, budget=3.0, initial=0.1,
                                     max_backoff=0.4)).run(op)
    assert clock.now - started <= 3.0
    # 0.7 s attempts with waits of 0.2 and 0.3 s (backoff + fixed jitter): a fourth attempt
    # would start after 3.1 s, past the 3 s budget, so the policy stops after the third
    assert op.calls == 3
    assert clock.now - started == pytest.approx(2.6)


# --- real time: total budget and per-attempt timeout --------------------------------------------


def real_policy(settings: ResilienceSettings) -> ResiliencePolicy:
    return ResiliencePolicy("real", settings, jitter=lambda: 0.0)


async def test_budget_limit_hit_first_gives_deadline_exceeded() -> None:
    settings = resilience(budget=0.3, connect=1.0, response=10.0, max_attempts=5)
    op = Script(hang, hang)
    stats = CallStats()
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError) as info:
        await real_policy(settings).run(op, stats=stats)
    elapsed = time.monotonic() - started
    assert 0.29 <= elapsed < 0.35
    assert op.calls == 1, "a spent budget is not retried"
    assert info.value.details["budget_s"] == 0.3
    assert [a.outcome for a in stats.attempts] == ["deadline_exceeded"]


async def test_response_limit_hit_first_retries_until_budget_is_gone() -> None:
    settings = resilience(budget=0.3, connect=0.02, response=0.06, max_attempts=10,
                          initial=0.01, max_backoff=0.01, jitter_s=0.0)
    op = Script(*([hang] * 10))
    stats = CallStats()
    started = time.monotonic()
    with pytest.raises((DeadlineExceededError, ResponseTimeoutError)):
        await real_policy(settings).run(op, stats=stats)
    elapsed = time.monotonic() - started
    assert elapsed < 0.35
    assert op.calls >= 3
    outcomes = [a.outcome for a in stats.attempts]
    assert outcomes[:-1] == ["response_timeout"] * (len(outcomes) - 1)
    assert outcomes[-1] in ("response_timeout", "deadline_exceeded")
    assert all(a.timeout_s <= 0.08 + 1e-9 for a in op.attempts)


async def test_response_limit_hit_first_with_few_attempts_gives_response_timeout() -> None:
    settings = resilience(budget=0.3, connect=0.02, response=0.06, max_attempts=2,
                          initial=0.01, max_backoff=0.01, jitter_s=0.0)
    op = Script(hang, hang)
    started = time.monotonic()
    with pytest.raises(ResponseTimeoutError) as info:
        await real_policy(settings).run(op)
    elapsed = time.monotonic() - started
    assert 0.16 <= elapsed < 0.3
    assert op.calls == 2
    assert info.value.details["timeout_s"] == pytest.approx(0.08)


async def test_per_attempt_timeout_turns_a_hang_into_response_timeout() -> None:
    settings = resilience(budget=5.0, connect=0.01, response=0.04, max_attempts=1)
    started = time.monotonic()
    with pytest.raises(ResponseTimeoutError) as info:
        await real_policy(settings).run(Script(hang))
    assert time.monotonic() - started < 0.5
    assert info.value.retryable
    assert "no answer within" in info.value.message


# --- breaker ------------------------------------------------------------------------------------


async def test_open_breaker_refuses_without_calling_op(
    make_policy: Factory, sleeper: Sleeper, clock: FakeClock
) -> None:
    breaker = make_breaker(clock, threshold=1)
    permit = await breaker.acquire()
    await breaker.record(permit, failure=True)
    op = Script("never")
    stats = CallStats()
    with pytest.raises(CircuitOpenError) as info:
        await make_policy(resilience(max_attempts=5), breaker).run(op, stats=stats)
    assert op.calls == 0
    assert sleeper.waits == []
    assert info.value.retry_after == pytest.approx(30.0)
    assert stats.attempts == []  # a refusal is not an attempt


async def test_circuit_open_from_inside_op_is_not_retried(
    make_policy: Factory, sleeper: Sleeper
) -> None:
    op = Script(CircuitOpenError(breaker="inner"), "never")
    with pytest.raises(CircuitOpenError):
        await make_policy(resilience(max_attempts=5)).run(op)
    assert op.calls == 1
    assert sleeper.waits == []


async def test_failures_open_the_breaker_and_next_run_fails_at_once(
    make_policy: Factory, clock: FakeClock
) -> None:
    breaker = make_breaker(clock, threshold=2)
    policy = make_policy(resilience(max_attempts=1), breaker)
    for _ in range(2):
        with pytest.raises(UpstreamServerError):
            await policy.run(Script(UpstreamServerError()))
    assert (await breaker.state()).status is OPEN
    op = Script("never")
    with pytest.raises(CircuitOpenError):
        await policy.run(op)
    assert op.calls == 0


async def test_breaker_opening_mid_call_stops_the_retries(
    make_policy: Factory, clock: FakeClock
) -> None:
    breaker = make_breaker(clock, threshold=2)
    op = Script(UpstreamServerError(), UpstreamServerError(), "never")
    with pytest.raises(CircuitOpenError):
        await make_policy(resilience(max_attempts=5), breaker).run(op)
    assert op.calls == 2


@pytest.mark.parametrize(
    "error",
    [lambda: InvalidRequestError(), lambda: NotFoundError(), lambda: OutputSchemaError(),
     lambda: BadResponseError()],
    ids=["invalid", "not_found", "schema", "bad_response"],
)
async def test_bad_requests_do_not_count_against_the_breaker(
    make_policy: Factory, clock: FakeClock, error: Callable[[], SleuthError]
) -> None:
    breaker = make_breaker(clock, threshold=2)
    policy = make_policy(resilience(max_attempts=3), breaker)
    for _ in range(4):
        with pytest.raises(SleuthError):
            await policy.run(Script(error()))
    state = await breaker.state()
    assert state.status is CLOSED
    assert state.consecutive_failures == 0
    assert state.window == (False,) * 4


@pytest.mark.parametrize(
    "error", [lambda: AuthError("401"), lambda: ValueError("bug")], ids=["auth", "unexpected"]
)
async def test_auth_and_unexpected_errors_count_against_the_breaker(
    make_policy: Factory, clock: FakeClock, error: Callable[[], Exception]
) -> None:
    breaker = make_breaker(clock, threshold=2)
    policy = make_policy(resilience(max_attempts=3), breaker)
    for _ in range(2):
        with pytest.raises((AuthError, ValueError)):
            await policy.run(Script(error()))
    assert (await breaker.state()).status is OPEN
    with pytest.raises(CircuitOpenError):
        await policy.run(Script("never"))


async def test_success_is_reported_to_the_breaker(make_policy: Factory, clock: FakeClock) -> None:
    breaker = make_breaker(clock, threshold=2)
    policy = make_policy(resilience(max_attempts=1), breaker)
    with pytest.raises(UpstreamServerError):
        await policy.run(Script(UpstreamServerError()))
    assert await policy.run(Script("answer")) == "answer"
    with pytest.raises(UpstreamServerError):
        await policy.run(Script(UpstreamServerError()))
    state = await breaker.state()
    assert state.status is CLOSED
    assert state.window == (True, False, True)


async def test_probe_success_through_the_policy_closes_the_breaker(
    make_policy: Factory, clock: FakeClock
) -> None:
    changes: list[tuple[BreakerStatus, BreakerStatus]] = []
    breaker = make_breaker(clock, threshold=1, cooldown=10.0, changes=changes)
    policy = make_policy(resilience(max_attempts=1), breaker)
    with pytest.raises(UpstreamServerError):
        await policy.run(Script(UpstreamServerError()))
    clock.advance(10.0)
    assert await policy.run(Script("answer")) == "answer"
    assert changes == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


def test_counts_against_breaker() -> None:
    for exc in (UpstreamServerError(), RateLimitedError(), ConnectionFailedError(),
                ResponseTimeoutError(), DeadlineExceededError(), AuthError(), RuntimeError()):
        assert counts_against_breaker(exc), exc
    for exc in (InvalidRequestError(), NotFoundError(), OutputSchemaError(),
                BadResponseError()):
        assert not counts_against_breaker(exc), exc


# --- stats --------------------------------------------------------------------------------------


async def test_call_stats_record_each_attempt(
    make_policy: Factory, clock: FakeClock, sleeper: Sleeper
) -> None:
    seen: list[tuple[str, AttemptRecord]] = []
    op = Script(UpstreamServerError(), RateLimitedError(retry_after=1.0), "answer",
                clock=clock, takes=0.25)
    stats = CallStats()
    policy = make_policy(resilience(initial=0.1, jitter_s=0.2),
                         on_attempt=lambda name, rec: seen.append((name, rec)))
    assert await policy.run(op, stats=stats) == "answer"
    assert [a.number for a in stats.attempts] == [1, 2, 3]
    assert [a.outcome for a in stats.attempts] == ["upstream_5xx", "rate_limited", "ok"]
    assert [a.waited_s for a in stats.attempts] == pytest.approx([0.2, 1.0, 0.0])
    assert [a.duration_s for a in stats.attempts] == pytest.approx([0.25, 0.25, 0.25])
    assert sleeper.waits == pytest.approx([0.2, 1.0])
    assert stats.retries == 2
    assert [name for name, _ in seen] == ["tier-a"] * 3
    assert [rec for _, rec in seen] == stats.attempts


async def test_stats_are_optional(make_policy: Factory) -> None:
    assert await make_policy().run(Script(ConnectionFailedError(), "answer")) == "answer"


# --- cancellation -------------------------------------------------------------------------------


async def test_cancelling_a_half_open_probe_releases_it(
    make_policy: Factory, clock: FakeClock
) -> None:
    changes: list[tuple[BreakerStatus, BreakerStatus]] = []
    breaker = make_breaker(clock, threshold=1, cooldown=10.0, changes=changes)
    policy = make_policy(resilience(max_attempts=1), breaker)
    with pytest.raises(UpstreamServerError):
        await policy.run(Script(UpstreamServerError()))
    clock.advance(10.0)

    started = asyncio.Event()

    async def probe_forever() -> None:
        started.set()
        await asyncio.Event().wait()

    stats = CallStats()
    task = asyncio.create_task(policy.run(Script(probe_forever), stats=stats))
    await asyncio.wait_for(started.wait(), 1.0)
    assert (await breaker.state()).status is HALF_OPEN
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    state = await breaker.state()
    assert state.status is OPEN, "the probe slot stayed taken"
    assert state.opened_at == clock.now
    assert [a.outcome for a in stats.attempts] == ["cancelled"]
    assert changes[-2:] == [(OPEN, HALF_OPEN), (HALF_OPEN, OPEN)]
    # after another cooldown a new probe may go
    clock.advance(10.0)
    assert await policy.run(Script("answer")) == "answer"
    assert (await breaker.state()).status is CLOSED


async def test_cancelling_an_ordinary_call_does_not_count_as_failure(
    make_policy: Factory, clock: FakeClock
) -> None:
    breaker = make_breaker(clock, threshold=1)
    policy = make_policy(resilience(), breaker)
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(policy.run(Script(forever)))
    await asyncio.wait_for(started.wait(), 1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    state = await breaker.state()
    assert state.status is CLOSED
    assert state.consecutive_failures == 0


# --- Deadline -----------------------------------------------------------------------------------


def test_deadline_remaining_and_elapsed(clock: FakeClock) -> None:
    deadline = Deadline(5.0, clock=clock)
    assert deadline.remaining() == 5.0
    assert deadline.at == clock.now + 5.0
    clock.advance(2.0)
    assert deadline.remaining() == 3.0
    assert deadline.elapsed() == 2.0
    clock.advance(10.0)
    assert deadline.remaining() == 0.0
    assert deadline.elapsed() == 12.0


async def test_attempt_timeout_shrinks_with_the_budget(
    make_policy: Factory, clock: FakeClock
) -> None:
    op = Script(UpstreamServerError(), UpstreamServerError(), "answer", clock=clock, takes=4.0)
    await make_policy(resilience(budget=12.0, connect=1.0, response=10.0, jitter_s=0.0,
                                 initial=0.5, max_backoff=0.5)).run(op)
    assert [a.timeout_s for a in op.attempts] == pytest.approx([11.0, 7.5, 3.0])
    assert all(a.deadline is op.attempts[0].deadline for a in op.attempts)
