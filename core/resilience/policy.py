"""The one resilience policy: budget, per-attempt timeout, breaker, retries with backoff.

A call gets a total budget (retries and waits included). Each attempt asks the
breaker for a permit (refused at once while open), runs under a timeout of at
most the remaining budget, and reports its outcome to the breaker. Transient
errors are retried with exponential backoff and jitter; a `Retry-After` is
honoured, and one that would not fit in the remaining budget ends the call
instead of being waited for. Permanent errors are never retried.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from core.errors import (
    AuthError,
    DeadlineExceededError,
    RateLimitedError,
    ResponseTimeoutError,
    SleuthError,
    TransientError,
)
from core.resilience.breaker import CircuitBreaker
from core.settings import ResilienceSettings

T = TypeVar("T")

# An attempt needs at least this long to be worth starting.
_MIN_ATTEMPT_S = 0.005


class Deadline:
    """A point in monotonic time by which a call must be over."""

    def __init__(self, budget_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.budget_s = budget_s
        self.started = clock()
        self.at = self.started + budget_s

    def remaining(self) -> float:
        """Return the seconds left (never negative)."""
        return max(0.0, self.at - self._clock())

    def elapsed(self) -> float:
        """Return the seconds since the deadline was set."""
        return self._clock() - self.started


@dataclass(frozen=True)
class Attempt:
    """What one attempt may use: its number, its timeouts and the call's deadline."""

    number: int
    timeout_s: float
    connect_timeout_s: float
    deadline: Deadline


@dataclass
class AttemptRecord:
    """How one attempt ended."""

    number: int
    outcome: str  # "ok" or an error code
    duration_s: float
    waited_s: float = 0.0


@dataclass
class CallStats:
    """What a guarded call went through, for telemetry and the audit log."""

    attempts: list[AttemptRecord] = field(default_factory=list)

    @property
    def retries(self) -> int:
        """Return the number of attempts after the first."""
        return max(0, len(self.attempts) - 1)


def counts_against_breaker(exc: BaseException) -> bool:
    """Say whether a failure says the peer is unwell (and not that our request was bad)."""
    return isinstance(exc, TransientError | AuthError) or not isinstance(exc, SleuthError)


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, SleuthError) and exc.retryable


class ResiliencePolicy:
    """Wraps a call in budget, timeouts, breaker and retries."""

    def __init__(
        self,
        name: str,
        settings: ResilienceSettings,
        breaker: CircuitBreaker | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        on_attempt: Callable[[str, AttemptRecord], None] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.breaker = breaker
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._on_attempt = on_attempt

    def backoff(self, attempt_number: int) -> float:
        """Return the wait after failed attempt `attempt_number` (1-based), jitter included."""
        retry = self.settings.retry
        base = min(retry.max_backoff_s, retry.initial_backoff_s * 2.0 ** (attempt_number - 1))
        return base + self._jitter() * retry.jitter_s

    async def run(
        self,
        op: Callable[[Attempt], Awaitable[T]],
        *,
        budget_s: float | None = None,
        stats: CallStats | None = None,
    ) -> T:
        """Run `op` under the policy and return its result or raise a `SleuthError`."""
        timeouts = self.settings.timeouts
        deadline = Deadline(
            timeouts.total_budget_s if budget_s is None else budget_s, clock=self._clock
        )
        record = stats if stats is not None else CallStats()
        counter = {"n": 0}

        async def one_attempt() -> T:
            counter["n"] += 1
            return await self._attempt(op, counter["n"], deadline, record)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
                return float(exc.retry_after)
            return self.backoff(state.attempt_number)

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= self.settings.retry.max_attempts:
                return True
            return deadline.remaining() < state.upcoming_sleep + _MIN_ATTEMPT_S

        async def sleep(seconds: float) -> None:
            if record.attempts:
                record.attempts[-1].waited_s = seconds
            await self._sleep(seconds)

        retrying = AsyncRetrying(
            retry=retry_if_exception(_is_retryable),
            wait=wait,
            stop=stop,
            sleep=sleep,
            reraise=True,
        )
        return await retrying(one_attempt)

    async def _attempt(
        self,
        op: Callable[[Attempt], Awaitable[T]],
        number: int,
        deadline: Deadline,
        stats: CallStats,
    ) -> T:
        timeouts = self.settings.timeouts
        remaining = deadline.remaining()
        if remaining < _MIN_ATTEMPT_S:
            raise DeadlineExceededError(
                f"{self.name}: budget of {deadline.budget_s:.3f}s spent", budget_s=deadline.budget_s
            )
        permit = await self.breaker.acquire() if self.breaker else None
        limit = min(timeouts.connect_s + timeouts.response_s, remaining)
        attempt = Attempt(
            number=number,
            timeout_s=limit,
            connect_timeout_s=min(timeouts.connect_s, limit),
            deadline=deadline,
        )
        started = self._clock()
        outcome = "ok"
        try:
            try:
                async with asyncio.timeout(limit):
                    result = await op(attempt)
            except TimeoutError:
                if deadline.remaining() < _MIN_ATTEMPT_S:
                    raise DeadlineExceededError(
                        f"{self.name}: budget of {deadline.budget_s:.3f}s spent",
                        budget_s=deadline.budget_s,
                    ) from None
                raise ResponseTimeoutError(
                    f"{self.name}: no answer within {limit:.3f}s", timeout_s=limit
                ) from None
        except SleuthError as exc:
            outcome = exc.code
            if permit is not None and self.breaker is not None:
                await self.breaker.record(permit, failure=counts_against_breaker(exc))
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            if permit is not None and permit.probe and self.breaker is not None:
                # free the half-open probe slot instead of holding it until its lease ends
                await self.breaker.record(permit, failure=True)
            raise
        except Exception:
            outcome = "unexpected"
            if permit is not None and self.breaker is not None:
                await self.breaker.record(permit, failure=True)
            raise
        finally:
            entry = AttemptRecord(number=number, outcome=outcome,
                                  duration_s=self._clock() - started)
            stats.attempts.append(entry)
            if self._on_attempt is not None:
                self._on_attempt(self.name, entry)
        if permit is not None and self.breaker is not None:
            await self.breaker.record(permit, failure=False)
        return result
