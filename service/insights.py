"""Operations figures over stored investigations and approvals (the console's operations view).

Everything here is computed from the stores' public methods: investigation records (their
connector calls, model tiers tried, timings, confidence) and approval requests. Nothing is
kept between calls; each call reads the window it is asked for.

Definitions (also in docs/console.md):
* an investigation is *automated* when it finished (completed) with no approval requested,
  not escalated, and diagnosed by a tier other than `human`;
* a decision is a *human override* when a person rejected the proposed action or approved a
  reply only after editing it;
* *approval turnaround* is from request to resolution, over approved and rejected requests;
* a connector call fails when it produced a typed failure (other than `disabled`); a model
  tier fails when its outcome is an error code (`skipped:*` and `no_rule_matched` are not
  failures: they are routing, not faults).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from core.settings import Settings
from governance.approvals_store import ApprovalRequest, ApprovalStatus
from service.investigations import Investigation, InvestigationStore, Status

PAGE = 500
NOT_MODEL_FAILURES = frozenset({"ok", "no_rule_matched"})
SOURCES = ("clickhouse", "stripe", "github", "linear", "statuspage", "docs")


@dataclass(frozen=True)
class Percentiles:
    """p50, p95 and p99 of a set of values (None when there are none)."""

    count: int
    p50: float | None
    p95: float | None
    p99: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Percentiles:
        """Return the percentiles of `values` (inclusive method, interpolated)."""
        if not values:
            return cls(0, None, None, None)
        if len(values) == 1:
            return cls(1, values[0], values[0], values[0])
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        return cls(len(values), cuts[49], cuts[94], cuts[98])


@dataclass(frozen=True)
class CallStats:
    """Calls to one connector or one model provider: how many, how many failed, how long."""

    name: str
    calls: int
    failures: int
    latency_ms: Percentiles

    @property
    def error_rate(self) -> float:
        """Return failures / calls (0 when there were no calls)."""
        return self.failures / self.calls if self.calls else 0.0


@dataclass(frozen=True)
class Usage:
    """Tokens and cost of one investigation or one day."""

    key: str
    investigations: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


@dataclass(frozen=True)
class ConfidencePoint:
    """One diagnosis: when, how confident, which tier."""

    at: datetime
    confidence: float
    tier: str
    root_cause: str


@dataclass(frozen=True)
class Breaker:
    """A breaker's state as the console can know it."""

    name: str
    status: str
    detail: str
    live: bool  # read from the shared store (Redis), not inferred from recent calls


@dataclass
class Insights:
    """The operations figures of one window."""

    since: datetime
    until: datetime
    investigations: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    investigation_ms: Percentiles = field(default_factory=lambda: Percentiles.of([]))
    connectors: list[CallStats] = field(default_factory=list)
    providers: list[CallStats] = field(default_factory=list)
    per_investigation: list[Usage] = field(default_factory=list)
    per_day: list[Usage] = field(default_factory=list)
    automation_rate: float | None = None
    override_rate: float | None = None
    decided: int = 0
    turnaround_s: Percentiles = field(default_factory=lambda: Percentiles.of([]))
    confidence: list[ConfidencePoint] = field(default_factory=list)


def recent_investigations(store: InvestigationStore, since: datetime, *,
                          limit: int = 5000) -> list[Investigation]:
    """Return investigations created since `since`, newest first, at most `limit`."""
    found: list[Investigation] = []
    before: datetime | None = None
    while len(found) < limit:
        page = store.list(before=before, limit=min(PAGE, limit - len(found)))
        found += [row for row in page if row.created_at >= since]
        if len(page) < PAGE or page[-1].created_at < since:
            break
        before = page[-1].created_at
    return found


def _cost(value: Any) -> Decimal:
    try:
        return Decimal(str(value or 0))
    except InvalidOperation:
        return Decimal(0)


def _stats(durations: dict[str, list[float]], failures: dict[str, int]) -> list[CallStats]:
    return [CallStats(name, len(values), failures.get(name, 0), Percentiles.of(values))
            for name, values in sorted(durations.items())]


def _model_failed(outcome: str) -> bool:
    return outcome not in NOT_MODEL_FAILURES and not outcome.startswith("skipped")


def _needed_people(record: dict[str, Any]) -> bool:
    return any(a.get("approval_id") is not None or a.get("status") == "pending_approval"
               for a in record.get("actions") or [])


def compute(investigations: Iterable[Investigation], approvals: Iterable[ApprovalRequest], *,
            since: datetime, until: datetime) -> Insights:
    """Compute the figures of a window from investigation rows and approval requests."""
    out = Insights(since=since, until=until)
    walls: list[float] = []
    call_ms: dict[str, list[float]] = defaultdict(list)
    call_failures: dict[str, int] = defaultdict(int)
    model_ms: dict[str, list[float]] = defaultdict(list)
    model_failures: dict[str, int] = defaultdict(int)
    days: dict[date, list[int | Decimal]] = {}
    by_status: dict[str, int] = defaultdict(int)
    completed = automated = 0
    for row in investigations:
        out.investigations += 1
        by_status[row.status] += 1
        record = row.record_dict() or {}
        if row.wall_ms is not None:
            walls.append(float(row.wall_ms))
        for call in record.get("calls") or []:
            error = call.get("error") or {}
            if error.get("kind") == "disabled":
                continue
            name = str(call.get("source"))
            call_ms[name].append(float(call.get("duration_ms") or 0))
            call_failures[name] += 0 if call.get("ok") else 1
        tokens_in = tokens_out = 0
        cost = Decimal(0)
        for tier in record.get("tiers_tried") or []:
            outcome = str(tier.get("outcome") or "")
            if outcome.startswith("skipped"):
                continue
            name = str(tier.get("provider") or tier.get("tier"))
            model_ms[name].append(float(tier.get("latency_ms") or 0))
            model_failures[name] += int(_model_failed(outcome))
            usage = tier.get("usage") or {}
            tokens_in += int(usage.get("input_tokens") or 0)
            tokens_out += int(usage.get("output_tokens") or 0)
            cost += _cost(tier.get("cost_usd"))
        if record:
            out.per_investigation.append(Usage(row.id, 1, tokens_in, tokens_out, float(cost)))
            day = days.setdefault(row.created_at.date(), [0, 0, 0, Decimal(0)])
            day[0] = int(day[0]) + 1
            day[1] = int(day[1]) + tokens_in
            day[2] = int(day[2]) + tokens_out
            day[3] = Decimal(day[3]) + cost
        if row.status == Status.COMPLETED.value:
            completed += 1
            automated += int(not _needed_people(record) and not record.get("escalated")
                             and record.get("tier") != "human")
        if row.confidence is not None:
            out.confidence.append(ConfidencePoint(row.created_at, float(row.confidence),
                                                  row.tier or "", row.root_cause or ""))
    out.by_status = dict(by_status)
    out.investigation_ms = Percentiles.of(walls)
    out.connectors = _stats(call_ms, call_failures)
    out.providers = _stats(model_ms, model_failures)
    out.per_day = [Usage(d.isoformat(), int(v[0]), int(v[1]), int(v[2]), float(v[3]))
                   for d, v in sorted(days.items())]
    out.automation_rate = automated / completed if completed else None
    out.confidence.sort(key=lambda p: p.at)
    _approval_figures(out, approvals, since)
    return out


def _approval_figures(out: Insights, approvals: Iterable[ApprovalRequest],
                      since: datetime) -> None:
    decided = overridden = 0
    turnaround: list[float] = []
    for row in approvals:
        if row.created_at < since:
            continue
        if row.status not in (ApprovalStatus.APPROVED.value, ApprovalStatus.REJECTED.value):
            continue
        decided += 1
        overridden += int(row.status == ApprovalStatus.REJECTED.value
                          or row.edited_text is not None)
        if row.resolved_at is not None:
            turnaround.append((row.resolved_at - row.created_at).total_seconds())
    out.decided = decided
    out.override_rate = overridden / decided if decided else None
    out.turnaround_s = Percentiles.of(turnaround)


def insights(store: InvestigationStore, approvals: Iterable[ApprovalRequest], *,
             days: float = 7, now: datetime | None = None, limit: int = 5000) -> Insights:
    """Return the figures of the last `days` days."""
    until = now or datetime.now(UTC)
    since = until - timedelta(days=days)
    rows = recent_investigations(store, since, limit=limit)
    return compute(rows, approvals, since=since, until=until)


def breaker_names(settings: Settings) -> list[str]:
    """Return the names of the breakers a worker with these settings uses."""
    return ([f"connector:{s}" for s in SOURCES]
            + [f"model:{t.name}" for t in settings.llm.tiers if t.kind != "human"])


async def live_breakers(settings: Settings) -> list[Breaker] | None:
    """Read breaker states from Redis when workers share them there; None otherwise."""
    if settings.breaker_backend != "redis" or settings.redis_url is None:
        return None
    from redis.asyncio import Redis

    from core.resilience.stores import RedisBreakerStore

    client = Redis.from_url(settings.redis_url.get_secret_value(), socket_connect_timeout=1,
                            socket_timeout=1)
    store = RedisBreakerStore(client)
    found: list[Breaker] = []
    try:
        for name in breaker_names(settings):
            state = await store.load(name)
            note = " (Redis unreachable: this process's view)" if store.degraded else ""
            found.append(Breaker(name, state.status.value,
                                 f"{state.consecutive_failures} consecutive failure(s){note}",
                                 live=not store.degraded))
    finally:
        await client.aclose()
    return found


def observed_breakers(settings: Settings, rows: Sequence[Investigation]) -> list[Breaker]:
    """Infer each breaker's state from the newest investigation that called it."""
    seen: dict[str, Breaker] = {}
    for row in rows:  # newest first: the first sighting wins
        record = row.record_dict() or {}
        for call in record.get("calls") or []:
            name = f"connector:{call.get('source')}"
            if name in seen:
                continue
            code = (call.get("error") or {}).get("code")
            seen[name] = _observed(name, code, row)
        for tier in record.get("tiers_tried") or []:
            name = f"model:{tier.get('tier')}"
            outcome = str(tier.get("outcome") or "")
            if name in seen or outcome.startswith("skipped"):
                continue
            seen[name] = _observed(name, None if outcome in NOT_MODEL_FAILURES else outcome,
                                   row)
    return [seen.get(name) or Breaker(name, "unknown", "not called in this window", live=False)
            for name in breaker_names(settings)]


def _observed(name: str, code: str | None, row: Investigation) -> Breaker:
    when = row.created_at.isoformat(timespec="minutes")
    if code == "circuit_open":
        return Breaker(name, "open", f"refused by its breaker in {row.id} ({when})", live=False)
    if code:
        return Breaker(name, "failing", f"{code} in {row.id} ({when})", live=False)
    return Breaker(name, "closed", f"answered in {row.id} ({when})", live=False)
