"""Circuit breaker: a pure state machine plus a thin class that keeps it in a store.

    closed ──(N consecutive failures, or failure rate ≥ threshold over the window)──▶ open
    open ──(cooldown elapsed: the next caller becomes the one probe)──▶ half_open
    half_open ──(probe succeeds)──▶ closed
    half_open ──(probe fails)──▶ open
    half_open ──(probe not reported within probe_timeout)──▶ a new probe is let through

While open, and while a probe is in flight, calls are refused at once.
The transition functions are pure so the in-process and Redis stores share them.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from core.errors import CircuitOpenError
from core.settings import BreakerSettings


class BreakerStatus(StrEnum):
    """The three states of a breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerState:
    """Everything a breaker remembers; JSON-serialisable for shared stores."""

    status: BreakerStatus = BreakerStatus.CLOSED
    consecutive_failures: int = 0
    window: tuple[bool, ...] = ()  # recent outcomes, oldest first; True means failure
    opened_at: float = 0.0
    probe_started_at: float | None = None
    generation: int = 0  # bumps on every open, so late reports of an old era are ignored

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "status": self.status.value,
            "consecutive_failures": self.consecutive_failures,
            "window": [int(x) for x in self.window],
            "opened_at": self.opened_at,
            "probe_started_at": self.probe_started_at,
            "generation": self.generation,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BreakerState:
        """Rebuild a state from `to_json` output."""
        return cls(
            status=BreakerStatus(data["status"]),
            consecutive_failures=int(data["consecutive_failures"]),
            window=tuple(bool(x) for x in data["window"]),
            opened_at=float(data["opened_at"]),
            probe_started_at=(
                None if data["probe_started_at"] is None else float(data["probe_started_at"])
            ),
            generation=int(data.get("generation", 0)),
        )


@dataclass(frozen=True)
class Permit:
    """Leave to make one call; hand it back to `record`."""

    probe: bool
    generation: int


@dataclass(frozen=True)
class Refusal:
    """The breaker said no; `retry_after` is the time until a probe may go."""

    retry_after: float


Decision = Permit | Refusal


def _open(state: BreakerState, now: float) -> BreakerState:
    return BreakerState(
        status=BreakerStatus.OPEN, opened_at=now, generation=state.generation + 1
    )


def failure_rate(window: tuple[bool, ...]) -> float:
    """Return the share of failures in a window (0 when empty)."""
    return sum(window) / len(window) if window else 0.0


def decide(state: BreakerState, now: float, cfg: BreakerSettings) -> tuple[BreakerState, Decision]:
    """Decide whether a call may go now; return the new state and the decision."""
    if state.status is BreakerStatus.CLOSED:
        return state, Permit(probe=False, generation=state.generation)
    if state.status is BreakerStatus.OPEN:
        waited = now - state.opened_at
        if waited < cfg.cooldown_s:
            return state, Refusal(retry_after=cfg.cooldown_s - waited)
        probing = replace(state, status=BreakerStatus.HALF_OPEN, probe_started_at=now)
        return probing, Permit(probe=True, generation=state.generation)
    # half-open: one probe at a time; a lost probe's lease runs out
    started = state.probe_started_at
    if started is not None and now - started < cfg.probe_timeout_s:
        return state, Refusal(retry_after=max(0.0, cfg.probe_timeout_s - (now - started)))
    return replace(state, probe_started_at=now), Permit(probe=True, generation=state.generation)


def record(
    state: BreakerState, permit: Permit, *, failure: bool, now: float, cfg: BreakerSettings
) -> BreakerState:
    """Apply the outcome of a permitted call and return the new state."""
    if permit.generation != state.generation:
        return state  # the call was let through before the breaker last opened
    if state.status is BreakerStatus.HALF_OPEN:
        if not permit.probe:
            return state
        return _open(state, now) if failure else BreakerState(generation=state.generation)
    if state.status is BreakerStatus.OPEN:
        return state
    window = (*state.window, failure)[-cfg.window_size :]
    consecutive = state.consecutive_failures + 1 if failure else 0
    if failure and (
        consecutive >= cfg.failure_threshold
        or (len(window) >= cfg.min_calls and failure_rate(window) >= cfg.failure_rate_threshold)
    ):
        return _open(state, now)
    return replace(state, window=window, consecutive_failures=consecutive)


@dataclass
class BreakerEvents:
    """Callbacks fired on state changes (metrics, logs)."""

    on_change: list[Callable[[str, BreakerStatus, BreakerStatus], None]] = field(
        default_factory=list
    )


class BreakerStore(abc.ABC):
    """Where breaker states live; `transact` applies a function atomically."""

    @abc.abstractmethod
    async def transact(
        self, name: str, fn: Callable[[BreakerState], tuple[BreakerState, Any]]
    ) -> Any:
        """Apply `fn` to the stored state atomically, store its new state, return its result."""

    @abc.abstractmethod
    async def load(self, name: str) -> BreakerState:
        """Return the stored state (closed when none)."""

    @abc.abstractmethod
    async def reset(self, name: str) -> None:
        """Forget a breaker's state."""


class CircuitBreaker:
    """A named breaker over a store; refuses calls at once while open."""

    def __init__(
        self,
        name: str,
        settings: BreakerSettings,
        store: BreakerStore,
        *,
        clock: Callable[[], float] = time.time,
        events: BreakerEvents | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self._store = store
        self._clock = clock
        self._events = events or BreakerEvents()

    async def acquire(self) -> Permit:
        """Return a permit, or raise `CircuitOpenError` without waiting."""
        now = self._clock()

        def step(state: BreakerState) -> tuple[BreakerState, tuple[BreakerState, Decision]]:
            new, decision = decide(state, now, self.settings)
            return new, (state, decision)

        result: tuple[BreakerState, Decision] = await self._store.transact(self.name, step)
        before, decision = result
        if isinstance(decision, Refusal):
            raise CircuitOpenError(breaker=self.name, retry_after=decision.retry_after)
        if decision.probe and before.status is not BreakerStatus.HALF_OPEN:
            self._fire(before.status, BreakerStatus.HALF_OPEN)
        return decision

    async def record(self, permit: Permit, *, failure: bool) -> None:
        """Report how a permitted call ended."""
        now = self._clock()

        def step(state: BreakerState) -> tuple[BreakerState, tuple[BreakerStatus, BreakerStatus]]:
            new = record(state, permit, failure=failure, now=now, cfg=self.settings)
            return new, (state.status, new.status)

        old, new = await self._store.transact(self.name, step)
        if old is not new:
            self._fire(old, new)

    async def state(self) -> BreakerState:
        """Return the current state as stored."""
        return await self._store.load(self.name)

    def _fire(self, old: BreakerStatus, new: BreakerStatus) -> None:
        for callback in self._events.on_change:
            callback(self.name, old, new)
