"""Property-based tests of the pure breaker transitions `decide` and `record`.

A hypothesis state machine drives a fake clock, acquires permits and reports their
outcomes in any order, and checks every step against a small reference model written
here from the documented rules (not from the implementation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from core.resilience.breaker import (
    BreakerState,
    BreakerStatus,
    Permit,
    Refusal,
    decide,
    failure_rate,
    record,
)
from core.settings import BreakerSettings

CLOSED, OPEN, HALF_OPEN = BreakerStatus.CLOSED, BreakerStatus.OPEN, BreakerStatus.HALF_OPEN

# Times are multiples of 0.5 so that float arithmetic is exact and boundaries are hit.
HALVES = st.integers(min_value=0, max_value=40).map(lambda n: n * 0.5)

CONFIGS = st.integers(1, 8).flatmap(
    # min_calls above window_size is refused by BreakerSettings itself
    lambda window: st.builds(
        BreakerSettings,
        failure_threshold=st.integers(1, 5),
        failure_rate_threshold=st.sampled_from([0.25, 0.5, 0.75, 1.0]),
        window_size=st.just(window),
        min_calls=st.integers(1, window),
        cooldown_s=st.sampled_from([0.5, 1.0, 2.5, 5.0, 10.0]),
        probe_timeout_s=st.sampled_from([0.5, 1.0, 3.0, 7.5, 20.0]),
    )
)


# --- the reference model ------------------------------------------------------------------------


@dataclass
class Model:
    """The breaker as the documentation describes it."""

    cfg: BreakerSettings
    status: str = "closed"
    consecutive: int = 0
    window: list[bool] = field(default_factory=list)
    opened_at: float = 0.0
    probe_started_at: float | None = None
    era: int = 0  # how many times the breaker has opened

    def trip(self, now: float) -> None:
        self.status = "open"
        self.opened_at = now
        self.era += 1
        self.consecutive = 0
        self.window = []
        self.probe_started_at = None

    def acquire(self, now: float) -> tuple[bool, bool, float]:
        """Return (allowed, is_probe, retry_after)."""
        if self.status == "closed":
            return True, False, 0.0
        if self.status == "open":
            if now - self.opened_at >= self.cfg.cooldown_s:
                self.status = "half_open"
                self.probe_started_at = now
                return True, True, 0.0
            return False, False, self.cfg.cooldown_s - (now - self.opened_at)
        assert self.probe_started_at is not None
        lease_left = self.cfg.probe_timeout_s - (now - self.probe_started_at)
        if lease_left > 0:
            return False, False, lease_left
        self.probe_started_at = now  # the lost probe is replaced
        return True, True, 0.0

    def report(self, era: int, probe: bool, failure: bool, now: float) -> None:
        if era != self.era:
            return  # issued before the breaker last opened
        if self.status == "half_open":
            if not probe:
                return
            if failure:
                self.trip(now)
            else:
                self.status = "closed"
                self.consecutive = 0
                self.window = []
                self.probe_started_at = None
            return
        if self.status == "open":
            return
        self.window = [*self.window, failure][-self.cfg.window_size :]
        self.consecutive = self.consecutive + 1 if failure else 0
        if not failure:
            return
        rate = sum(self.window) / len(self.window)
        if self.consecutive >= self.cfg.failure_threshold or (
            len(self.window) >= self.cfg.min_calls and rate >= self.cfg.failure_rate_threshold
        ):
            self.trip(now)


@dataclass
class Outstanding:
    permit: Permit
    issued_at: float


# --- the state machine --------------------------------------------------------------------------


class BreakerMachine(RuleBasedStateMachine):
    """Random schedules of clock moves, acquisitions and reports."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0
        self.cfg = BreakerSettings()
        self.state = BreakerState()
        self.model = Model(self.cfg)
        self.outstanding: list[Outstanding] = []
        self.highest_generation = 0

    @initialize(cfg=CONFIGS)
    def configure(self, cfg: BreakerSettings) -> None:
        self.cfg = cfg
        self.model = Model(cfg)
        note(repr(cfg))

    # -- helpers --

    def live_probes(self) -> list[Outstanding]:
        """Probe permits of the current half-open era whose lease has not run out."""
        return [
            o for o in self.outstanding
            if o.permit.probe
            and o.permit.generation == self.state.generation
            and self.now - o.issued_at < self.cfg.probe_timeout_s
        ]

    # -- rules --

    @rule(dt=HALVES)
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule()
    def acquire(self) -> None:
        before = self.state
        live_before = self.live_probes()
        new, decision = decide(before, self.now, self.cfg)
        allowed, probe, retry_after = self.model.acquire(self.now)

        if before.status is CLOSED:
            assert new == before, "a closed breaker lets calls through without changing"
            assert decision == Permit(probe=False, generation=before.generation)
        if before.status is OPEN:
            waited = self.now - before.opened_at
            assert isinstance(decision, Permit) == (waited >= self.cfg.cooldown_s), (
                "open refuses exactly until the cooldown has elapsed")
            if isinstance(decision, Refusal):
                assert new == before
                assert decision.retry_after == pytest.approx(self.cfg.cooldown_s - waited)
                assert decision.retry_after > 0
            else:
                assert decision.probe
                assert new.status is HALF_OPEN
                assert new.probe_started_at == self.now
        if before.status is HALF_OPEN and live_before:
            assert isinstance(decision, Refusal), "a second probe while one is in flight"
            assert new == before
            assert 0 < decision.retry_after <= self.cfg.probe_timeout_s

        assert isinstance(decision, Permit) == allowed
        if isinstance(decision, Permit):
            assert decision.probe == probe
            assert decision.generation == new.generation
            self.outstanding.append(Outstanding(decision, self.now))
        else:
            assert decision.retry_after == pytest.approx(retry_after)
        self.state = new

    @rule()
    def race(self) -> None:
        """Many callers at the same instant: at most one of them may become the probe."""
        probes = 0
        for _ in range(5):
            new, decision = decide(self.state, self.now, self.cfg)
            self.model.acquire(self.now)
            if isinstance(decision, Permit):
                probes += decision.probe
                self.outstanding.append(Outstanding(decision, self.now))
            self.state = new
        assert probes <= 1

    @precondition(lambda self: bool(self.outstanding))
    @rule(pick=st.integers(0, 10_000), failure=st.booleans())
    def report(self, pick: int, failure: bool) -> None:
        entry = self.outstanding.pop(pick % len(self.outstanding))
        permit = entry.permit
        before = self.state
        new = record(before, permit, failure=failure, now=self.now, cfg=self.cfg)
        self.model.report(permit.generation, permit.probe, failure, self.now)

        if permit.generation != before.generation:
            assert new == before, "a stale permit changed the state"
            self.state = new
            return

        if before.status is CLOSED:
            window = (*before.window, failure)[-self.cfg.window_size :]
            should_open = failure and (
                before.consecutive_failures + 1 >= self.cfg.failure_threshold
                or (len(window) >= self.cfg.min_calls
                    and failure_rate(window) >= self.cfg.failure_rate_threshold)
            )
            assert (new.status is OPEN) == should_open
            if not should_open:
                assert new.status is CLOSED
                assert new.window == window
        elif before.status is HALF_OPEN and permit.probe:
            if failure:
                assert new.status is OPEN
                assert new.opened_at == self.now
            else:
                assert new.status is CLOSED
                assert new.window == ()
                assert new.consecutive_failures == 0
                assert new.generation == before.generation
        else:
            assert new == before

        if new.status is OPEN and before.status is not OPEN:
            assert new.generation == before.generation + 1, "opening starts a new era"
            assert new.opened_at == self.now
        self.state = new

    @rule()
    def drop_reported_stale(self) -> None:
        """Forget permits of older eras (callers that gave up); they must not matter."""
        self.outstanding = [
            o for o in self.outstanding if o.permit.generation == self.state.generation
        ]

    # -- invariants --

    @invariant()
    def matches_model(self) -> None:
        s, m = self.state, self.model
        assert s.status.value == m.status
        assert s.consecutive_failures == m.consecutive
        assert list(s.window) == m.window
        assert s.generation == m.era
        if s.status is not CLOSED:
            assert s.opened_at == m.opened_at
        if s.status is HALF_OPEN:
            assert s.probe_started_at == m.probe_started_at

    @invariant()
    def structural(self) -> None:
        s = self.state
        assert len(s.window) <= self.cfg.window_size
        assert s.generation >= self.highest_generation, "generation went back"
        self.highest_generation = s.generation
        if s.status is CLOSED:
            assert s.consecutive_failures < self.cfg.failure_threshold
            assert s.consecutive_failures <= len(s.window) or len(s.window) == self.cfg.window_size
        if s.status is OPEN:
            assert s.window == ()
            assert s.consecutive_failures == 0
            assert s.opened_at <= self.now
        if s.status is HALF_OPEN:
            assert s.probe_started_at is not None
            assert s.opened_at + self.cfg.cooldown_s <= s.probe_started_at <= self.now

    @invariant()
    def at_most_one_live_probe(self) -> None:
        if self.state.status is HALF_OPEN:
            assert len(self.live_probes()) <= 1


BreakerMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None
)
TestBreakerMachine = BreakerMachine.TestCase


# --- serialisation ------------------------------------------------------------------------------

FINITE = st.floats(allow_nan=False, allow_infinity=False)
STATES = st.builds(
    BreakerState,
    status=st.sampled_from(list(BreakerStatus)),
    consecutive_failures=st.integers(0, 10**6),
    window=st.lists(st.booleans(), max_size=40).map(tuple),
    opened_at=FINITE,
    probe_started_at=st.none() | FINITE,
    generation=st.integers(0, 2**53),
)


@settings(max_examples=200, deadline=None)
@given(STATES)
def test_state_json_round_trip(state: BreakerState) -> None:
    data = state.to_json()
    text = json.dumps(data, allow_nan=False)  # JSON-safe, no NaN or tuples needed
    again = BreakerState.from_json(json.loads(text))
    assert again == state
    assert again.to_json() == data
    assert isinstance(again.status, BreakerStatus)
    assert all(isinstance(x, bool) for x in again.window)


def test_state_from_json_without_generation_defaults_to_zero() -> None:
    data = BreakerState(status=OPEN, opened_at=5.0, generation=3).to_json()
    del data["generation"]
    assert BreakerState.from_json(data) == BreakerState(status=OPEN, opened_at=5.0)


def test_state_to_json_shape() -> None:
    state = BreakerState(status=HALF_OPEN, consecutive_failures=0, window=(True, False),
                         opened_at=1.5, probe_started_at=2.5, generation=4)
    assert state.to_json() == {"status": "half_open", "consecutive_failures": 0,
                               "window": [1, 0], "opened_at": 1.5, "probe_started_at": 2.5,
                               "generation": 4}


# --- worked examples (readable companions to the machine) ---------------------------------------


def cfg(**kw: float) -> BreakerSettings:
    base: dict[str, float] = {"failure_threshold": 3, "failure_rate_threshold": 0.5,
                              "window_size": 4, "min_calls": 4, "cooldown_s": 10.0,
                              "probe_timeout_s": 5.0}
    return BreakerSettings(**{**base, **kw})  # type: ignore[arg-type]


def fail(state: BreakerState, c: BreakerSettings, now: float = 0.0) -> BreakerState:
    state, permit = decide(state, now, c)
    assert isinstance(permit, Permit)
    return record(state, permit, failure=True, now=now, cfg=c)


def succeed(state: BreakerState, c: BreakerSettings, now: float = 0.0) -> BreakerState:
    state, permit = decide(state, now, c)
    assert isinstance(permit, Permit)
    return record(state, permit, failure=False, now=now, cfg=c)


def test_consecutive_failures_open_the_breaker() -> None:
    c = cfg(min_calls=8, window_size=8)
    state = BreakerState()
    state = fail(fail(state, c), c)
    assert state.status is CLOSED
    assert state.consecutive_failures == 2
    state = fail(state, c, now=7.0)
    assert state.status is OPEN
    assert state.opened_at == 7.0
    assert state.generation == 1


def test_a_success_resets_the_consecutive_count() -> None:
    c = cfg(min_calls=8, window_size=8, failure_rate_threshold=1.0)
    state = BreakerState()
    for _ in range(3):
        state = succeed(fail(fail(state, c), c), c)
    assert state.status is CLOSED
    assert state.consecutive_failures == 0


def test_failure_rate_opens_once_min_calls_reached() -> None:
    c = cfg(failure_threshold=5, min_calls=4, window_size=4, failure_rate_threshold=0.5)
    state = BreakerState()
    state = fail(succeed(fail(state, c), c), c)  # F S F: 3 calls, below min_calls
    assert state.status is CLOSED
    state = succeed(state, c)  # F S F S: 50 %, but a success does not trip
    assert state.status is CLOSED
    state = fail(state, c)  # S F S F: 50 % over 4 calls
    assert state.status is OPEN


def test_open_refuses_with_retry_after_then_admits_one_probe() -> None:
    c = cfg(failure_threshold=1)
    state = fail(BreakerState(), c, now=100.0)
    state, decision = decide(state, 104.0, c)
    assert decision == Refusal(retry_after=6.0)
    state, decision = decide(state, 110.0, c)
    assert decision == Permit(probe=True, generation=1)
    assert state.status is HALF_OPEN
    state, second = decide(state, 112.0, c)
    assert second == Refusal(retry_after=3.0)
    state, replacement = decide(state, 115.0, c)  # lease of the first probe ran out
    assert replacement == Permit(probe=True, generation=1)
    assert state.probe_started_at == 115.0


def test_probe_outcomes() -> None:
    c = cfg(failure_threshold=1)
    opened = fail(BreakerState(), c, now=0.0)
    half, probe = decide(opened, 10.0, c)
    assert isinstance(probe, Permit)
    closed = record(half, probe, failure=False, now=11.0, cfg=c)
    assert closed == BreakerState(generation=1)
    reopened = record(half, probe, failure=True, now=11.0, cfg=c)
    assert reopened.status is OPEN
    assert reopened.opened_at == 11.0
    assert reopened.generation == 2


def test_stale_permit_is_ignored() -> None:
    c = cfg(failure_threshold=1)
    state, old = decide(BreakerState(), 0.0, c)
    assert isinstance(old, Permit)
    opened = fail(state, c)
    for failure in (True, False):
        assert record(opened, old, failure=failure, now=1.0, cfg=c) == opened
    half, _ = decide(opened, 10.0, c)
    assert record(half, old, failure=False, now=11.0, cfg=c) == half


def test_failure_rate() -> None:
    assert failure_rate(()) == 0.0
    assert failure_rate((True, False, False, True)) == 0.5
    assert failure_rate((True,)) == 1.0
