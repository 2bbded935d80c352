"""The connector interface: named read-only operations returning one result type.

A connector has a name, a config model (secrets as `SecretStr`), a health check
and operations declared with `@operation`. `Connector.run()` is the only way
operations are called: it validates parameters, runs the handler under the
core resilience policy (budget, timeouts, retries, breaker), records metrics,
and returns a `ToolResult` holding evidence or a typed failure. It never
raises into the caller.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.domain import Evidence, SourceName
from core.errors import (
    AuthError,
    BadResponseError,
    CircuitOpenError,
    ConnectionFailedError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    SleuthError,
    TimeoutError,
    UpstreamServerError,
)
from core.resilience import Attempt, CallStats, ResiliencePolicy
from core.settings import ResilienceSettings
from core.telemetry import Metrics, get_logger

log = get_logger("sleuth.connectors")

FailureKind = Literal[
    "unavailable", "timed_out", "unauthorized", "rate_limited", "bad_response",
    "invalid_parameters", "not_found", "disabled",
]


class ConnectorConfig(BaseModel):
    """Settings every connector has; subclasses add their own (secrets as SecretStr)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    resilience: ResilienceSettings | None = None

    def missing(self) -> list[str]:
        """Name required settings that are absent (empty: the connector can run)."""
        return []


class Params(BaseModel):
    """Base of operation parameter models: unknown parameters are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=2_000)


class ConnectorFailure(BaseModel):
    """Why an operation produced no evidence."""

    model_config = ConfigDict(frozen=True)

    kind: FailureKind
    code: str
    message: str
    retry_after: float | None = None


class ToolResult(BaseModel):
    """The one result type of every connector call."""

    model_config = ConfigDict(frozen=True)

    source: SourceName
    operation: str
    params: dict[str, Any] = Field(default_factory=dict)
    evidence: list[Evidence] = Field(default_factory=list)
    error: ConnectorFailure | None = None
    duration_ms: float = 0.0
    attempts: int = 0

    @property
    def ok(self) -> bool:
        """Say whether the call succeeded (it may still have found nothing)."""
        return self.error is None


class Health(BaseModel):
    """What a health check found."""

    source: SourceName
    status: Literal["ok", "degraded", "down", "disabled"]
    detail: str = ""
    latency_ms: float = 0.0


ParamsT = TypeVar("ParamsT", bound=Params)
Handler = Callable[[Any, Any, Attempt], Awaitable[list[Evidence]]]


@dataclass(frozen=True)
class Operation:
    """A named read-only query with typed parameters."""

    name: str
    params: type[Params]
    description: str
    handler: Handler


def operation(name: str, params: type[ParamsT], description: str) -> Callable[
    [Callable[[Any, ParamsT, Attempt], Awaitable[list[Evidence]]]],
    Callable[[Any, ParamsT, Attempt], Awaitable[list[Evidence]]],
]:
    """Declare a connector method as the read-only operation `name`."""

    def mark(
        fn: Callable[[Any, ParamsT, Attempt], Awaitable[list[Evidence]]],
    ) -> Callable[[Any, ParamsT, Attempt], Awaitable[list[Evidence]]]:
        fn.__sleuth_operation__ = Operation(name, params, description, fn)  # type: ignore[attr-defined]
        return fn

    return mark


def failure_for(exc: SleuthError) -> ConnectorFailure:
    """Return the typed failure for a sleuth error."""
    kind: FailureKind
    if isinstance(exc, TimeoutError):
        kind = "timed_out"
    elif isinstance(exc, RateLimitedError):
        kind = "rate_limited"
    elif isinstance(exc, AuthError):
        kind = "unauthorized"
    elif isinstance(exc, UpstreamServerError | ConnectionFailedError | CircuitOpenError):
        kind = "unavailable"
    elif isinstance(exc, InvalidRequestError):
        kind = "invalid_parameters"
    elif isinstance(exc, NotFoundError):
        kind = "not_found"
    else:
        kind = "bad_response"
    retry_after = getattr(exc, "retry_after", None)
    return ConnectorFailure(kind=kind, code=exc.code, message=exc.message,
                            retry_after=retry_after)


class Connector(abc.ABC):
    """Base of the six connectors. Subclasses set `name` and `config_model`."""

    name: ClassVar[SourceName]
    config_model: ClassVar[type[ConnectorConfig]]
    _operations: ClassVar[dict[str, Operation]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        ops: dict[str, Operation] = {}
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                op = getattr(value, "__sleuth_operation__", None)
                if isinstance(op, Operation):
                    ops[op.name] = op
        cls._operations = ops

    def __init__(self, config: ConnectorConfig, *, policy: ResiliencePolicy,
                 metrics: Metrics, clock: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.policy = policy
        self.metrics = metrics
        self.now = clock or (lambda: datetime.now(UTC))

    @classmethod
    def operations(cls) -> dict[str, Operation]:
        """Return the connector's operations by name."""
        return dict(cls._operations)

    async def run(self, operation: str, params: Mapping[str, Any] | Params | None = None,
                  *, budget_s: float | None = None) -> ToolResult:
        """Run one operation under the resilience policy; never raises."""
        started = time.perf_counter()
        raw = params.model_dump() if isinstance(params, Params) else dict(params or {})
        op = self._operations.get(operation)
        if op is None:
            return self._finish(operation, raw, started, CallStats(), error=ConnectorFailure(
                kind="invalid_parameters", code="unknown_operation",
                message=f"{self.name} has no operation {operation!r}"))
        try:
            parsed = op.params.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(root)"
            return self._finish(operation, raw, started, CallStats(), error=ConnectorFailure(
                kind="invalid_parameters", code="invalid_parameters",
                message=f"{where}: {first['msg']}"))
        stats = CallStats()
        try:
            evidence = await self.policy.run(
                lambda attempt: op.handler(self, parsed, attempt), budget_s=budget_s, stats=stats
            )
        except SleuthError as exc:
            return self._finish(operation, parsed.model_dump(mode="json"), started, stats,
                                error=failure_for(exc))
        except Exception as exc:  # a connector bug must not fail the investigation
            log.exception("connector_bug", source=self.name, operation=operation)
            return self._finish(operation, parsed.model_dump(mode="json"), started, stats,
                                error=ConnectorFailure(kind="bad_response", code="internal_error",
                                                       message=f"{type(exc).__name__}"))
        return self._finish(operation, parsed.model_dump(mode="json"), started, stats,
                            evidence=evidence)

    def _finish(self, operation: str, params: dict[str, Any], started: float, stats: CallStats,
                *, evidence: list[Evidence] | None = None,
                error: ConnectorFailure | None = None) -> ToolResult:
        duration = time.perf_counter() - started
        outcome = "ok" if error is None else error.code
        self.metrics.connector_call_seconds.labels(
            self.name, operation, "ok" if error is None else "error").observe(duration)
        self.metrics.connector_calls.labels(self.name, operation, outcome).inc()
        if error is not None:
            self.metrics.errors.labels(f"connector:{self.name}", error.code).inc()
        log.info("connector_call", source=self.name, operation=operation, outcome=outcome,
                 duration_ms=round(duration * 1000, 3), attempts=len(stats.attempts),
                 evidence=len(evidence or []))
        return ToolResult(source=self.name, operation=operation, params=params,
                          evidence=evidence or [], error=error, duration_ms=duration * 1000,
                          attempts=len(stats.attempts))

    async def health(self) -> Health:
        """Check that the system answers; subclasses override `_ping`."""
        started = time.perf_counter()
        try:
            await self.policy.run(self._ping, budget_s=5.0)
        except SleuthError as exc:
            return Health(source=self.name, status="down", detail=f"{exc.code}: {exc.message}",
                          latency_ms=(time.perf_counter() - started) * 1000)
        return Health(source=self.name, status="ok",
                      latency_ms=(time.perf_counter() - started) * 1000)

    @abc.abstractmethod
    async def _ping(self, attempt: Attempt) -> None:
        """Make the cheapest read that proves the system answers (raise a SleuthError if not)."""

    async def aclose(self) -> None:  # noqa: B027 - most connectors override; none must
        """Release clients and connections."""


def bad_payload(source: str, what: str) -> BadResponseError:
    """Return the error for a payload that does not have the expected shape."""
    return BadResponseError(f"{source}: unexpected payload: {what}")
