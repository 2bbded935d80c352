"""The model gateway: the one call site of every model call.

Tiers are tried in order (e.g. Anthropic → OpenAI/self-hosted → rules → human).
Each model tier runs under its own resilience policy (budget, timeouts,
retries, breaker). Output is validated against the caller's pydantic schema;
invalid output is a failure that moves on to the next tier. When every tier
fails, or the human tier is reached, the result is `NeedsHuman`: the gateway
never raises to its caller for a model failure.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from pydantic import BaseModel, ValidationError

from core.errors import (
    BadResponseError,
    DeadlineExceededError,
    OutputSchemaError,
    SleuthError,
    StreamInterruptedError,
    StreamStalledError,
)
from core.llm import router
from core.llm.pricing import PriceTable
from core.llm.providers.base import ModelProvider, StreamChunk, parse_json_object
from core.llm.types import (
    CompletedEvent,
    EscalatedEvent,
    FailedEvent,
    FallbackEvent,
    ModelRequest,
    ModelResult,
    NeedsHuman,
    OutputT,
    RawCompletion,
    TierAttempt,
    TokenEvent,
    Usage,
)
from core.resilience import Attempt, CallStats, Deadline, ResiliencePolicy
from core.settings import ModelTierSettings
from core.telemetry import Metrics, get_logger

log = get_logger("sleuth.llm")

StreamEvent = TokenEvent | FallbackEvent | CompletedEvent[Any] | FailedEvent | EscalatedEvent


@dataclass
class Tier:
    """A configured tier: its settings, its provider (None for the human tier), its policy."""

    settings: ModelTierSettings
    provider: ModelProvider | None
    policy: ResiliencePolicy
    stall_s: float

    @property
    def name(self) -> str:
        """Return the tier's configured name."""
        return self.settings.name

    @property
    def kind(self) -> str:
        """Return the tier's kind (anthropic, openai, rules, human)."""
        return self.settings.kind

    @property
    def keeps_data_in_house(self) -> bool:
        """Say whether sensitive requests may go to this tier."""
        return self.settings.keeps_data_in_house

    @property
    def provider_name(self) -> str:
        """Return the provider label used in metrics."""
        return self.provider.provider if self.provider else "human"

    @property
    def model(self) -> str:
        """Return the model name used in metrics and cost."""
        return self.provider.model if self.provider else ""


def validate_output(
    content: Any, schema: type[OutputT], check: Callable[[BaseModel], None] | None
) -> OutputT:
    """Validate `content` against `schema` and the request's own check."""
    if isinstance(content, str):
        content = parse_json_object(content)
    try:
        output = schema.model_validate(content)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        # no input values in the message: they may hold customer data
        raise OutputSchemaError(
            f"output does not match {schema.__name__}: {where}: {first['type']}",
            errors=exc.error_count(),
        ) from None
    if check is not None:
        try:
            check(output)
        except OutputSchemaError:
            raise
        except (ValueError, SleuthError) as exc:
            raise OutputSchemaError(f"output rejected: {exc}") from None
    return output


class ModelGateway:
    """Serves structured model requests through ordered tiers with fallback."""

    def __init__(
        self,
        tiers: Sequence[Tier],
        *,
        prices: PriceTable,
        metrics: Metrics,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.tiers = list(tiers)
        self.prices = prices
        self.metrics = metrics
        self._clock = clock
        self._result_types: dict[type[BaseModel], Any] = {}

    async def generate(
        self, request: ModelRequest, schema: type[OutputT]
    ) -> ModelResult[OutputT] | NeedsHuman:
        """Return the first tier's validated answer, or `NeedsHuman` when none could answer."""
        started = self._clock()
        tried: list[TierAttempt] = []
        for tier, skip in router.plan(self.tiers, request):
            if skip is not None:
                tried.append(self._skipped(tier, skip))
                continue
            if tier.provider is None:
                return self._escalate("human tier reached", tried, started)
            tier_started = self._clock()
            stats = CallStats()
            raw: RawCompletion | None = None
            try:
                raw = completion = await tier.policy.run(
                    functools.partial(tier.provider.complete, request, schema), stats=stats
                )
                output = validate_output(completion.content, schema, request.validator)
            except SleuthError as exc:
                usage = raw.usage if raw else Usage()
                tried.append(self._account(tier, exc.code, tier_started, stats, usage, raw, exc))
                continue
            attempt = self._account(
                tier, "ok", tier_started, stats, completion.usage, completion, None
            )
            tried.append(attempt)
            return self._result(tier, output, attempt, tried, started)
        return self._escalate("every tier failed", tried, started)

    async def stream(
        self, request: ModelRequest, schema: type[OutputT]
    ) -> AsyncIterator[StreamEvent]:
        """Stream the answer; fall back only while no token has been delivered."""
        started = self._clock()
        tried: list[TierAttempt] = []
        for tier, skip in router.plan(self.tiers, request):
            if skip is not None:
                tried.append(self._skipped(tier, skip))
                continue
            if tier.provider is None:
                yield EscalatedEvent(result=self._escalate("human tier reached", tried, started))
                return
            tier_started = self._clock()
            stats = CallStats()
            deadline = Deadline(tier.policy.settings.timeouts.total_budget_s)
            try:
                chunks, first = await tier.policy.run(
                    functools.partial(self._open_stream, tier, tier.provider, request, schema),
                    budget_s=deadline.remaining(),
                    stats=stats,
                )
            except SleuthError as exc:
                attempt = self._account(tier, exc.code, tier_started, stats, Usage(), None, exc)
                tried.append(attempt)
                yield FallbackEvent(attempt=attempt)
                continue
            parts: list[str] = []
            usage, model = Usage(), tier.model
            chunk: StreamChunk | None = first
            try:
                while chunk is not None:
                    if chunk.text:
                        parts.append(chunk.text)
                        yield TokenEvent(tier=tier.name, text=chunk.text)
                    if chunk.usage is not None:
                        usage, model = chunk.usage, chunk.model or model
                    chunk = await self._next_chunk(chunks, tier.stall_s, deadline)
                output = validate_output("".join(parts), schema, request.validator)
            except SleuthError as exc:
                await chunks.aclose()
                raw = RawCompletion(content=None, usage=usage, model=model)
                failure = StreamInterruptedError(
                    f"{tier.name}: stream failed after {len(parts)} deltas: "
                    f"{exc.code}: {exc.message}", cause=exc.code,
                )
                tried.append(
                    self._account(tier, failure.code, tier_started, stats, usage, raw, failure)
                )
                yield FailedEvent(
                    tier=tier.name, code=failure.code, cause=exc.code, message=failure.message,
                    partial_text="".join(parts), tiers_tried=tried,
                )
                return
            raw = RawCompletion(content=None, usage=usage, model=model)
            attempt = self._account(tier, "ok", tier_started, stats, usage, raw, None)
            tried.append(attempt)
            yield CompletedEvent(result=self._result(tier, output, attempt, tried, started))
            return
        yield EscalatedEvent(result=self._escalate("every tier failed", tried, started))

    async def _open_stream(
        self,
        tier: Tier,
        provider: ModelProvider,
        request: ModelRequest,
        schema: type[BaseModel],
        attempt: Attempt,
    ) -> tuple[AsyncGenerator[StreamChunk, None], StreamChunk]:
        """Open a stream and wait for its first token (the point of no fallback)."""
        chunks = cast(AsyncGenerator[StreamChunk, None], provider.stream(request, schema, attempt))
        try:
            while True:
                chunk = await self._next_chunk(chunks, tier.stall_s, attempt.deadline)
                if chunk is None:
                    raise BadResponseError(f"{tier.name}: stream ended before any output")
                if chunk.text:
                    return chunks, chunk
        except BaseException:
            await chunks.aclose()
            raise

    @staticmethod
    async def _next_chunk(
        chunks: AsyncGenerator[StreamChunk, None], stall_s: float, deadline: Deadline
    ) -> StreamChunk | None:
        limit = min(stall_s, deadline.remaining())
        try:
            async with asyncio.timeout(limit):
                return await anext(chunks)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            if deadline.remaining() <= 0:
                raise DeadlineExceededError("stream exceeded its total budget") from None
            raise StreamStalledError(f"no token for {limit:.3f}s", stall_s=limit) from None

    def _skipped(self, tier: Tier, reason: str) -> TierAttempt:
        self.metrics.model_calls.labels(tier.name, tier.provider_name, f"skipped_{reason}").inc()
        return TierAttempt(
            tier=tier.name, kind=tier.kind, provider=tier.provider_name, model=tier.model,
            outcome=f"skipped:{reason}",
        )

    def _account(
        self,
        tier: Tier,
        outcome: str,
        started: float,
        stats: CallStats,
        usage: Usage,
        raw: RawCompletion | None,
        error: SleuthError | None,
    ) -> TierAttempt:
        """Record one tier's call in metrics and logs; return its summary."""
        latency = self._clock() - started
        model = (raw.model if raw and raw.model else "") or tier.model
        cost = self.prices.cost(model, usage)
        provider = tier.provider_name
        m = self.metrics
        status = "ok" if error is None else "error"
        m.model_call_seconds.labels(tier.name, provider, status).observe(latency)
        m.model_calls.labels(tier.name, provider, outcome).inc()
        if error is not None:
            m.errors.labels(f"model:{tier.name}", error.code).inc()
        for kind, count in (
            ("input", usage.input_tokens), ("output", usage.output_tokens),
            ("cache_read", usage.cache_read_tokens), ("cache_write", usage.cache_write_tokens),
        ):
            if count:
                m.model_tokens.labels(tier.name, provider, kind).inc(count)
        if cost:
            m.model_cost_usd.labels(tier.name, provider).inc(float(cost))
        log.info(
            "model_call", tier=tier.name, provider=provider, model=model, outcome=outcome,
            latency_ms=round(latency * 1000, 3), attempts=len(stats.attempts),
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens, cache_write_tokens=usage.cache_write_tokens,
            cost_usd=str(cost),
        )
        return TierAttempt(
            tier=tier.name, kind=tier.kind, provider=provider, model=model, outcome=outcome,
            error=error.message if error else None, latency_ms=latency * 1000,
            attempts=len(stats.attempts), usage=usage, cost_usd=cost,
        )

    def _result(
        self,
        tier: Tier,
        output: OutputT,
        attempt: TierAttempt,
        tried: list[TierAttempt],
        started: float,
    ) -> ModelResult[OutputT]:
        self.metrics.gateway_outcomes.labels(tier.name).inc()
        # parametrise so the output serialises as its own type, not as a bare BaseModel;
        # pydantic caches parametrisations weakly, so keep them here or GC rebuilds them
        result_type: Any = self._result_types.get(type(output))
        if result_type is None:
            result_type = ModelResult[type(output)]  # type: ignore[misc]
            self._result_types[type(output)] = result_type
        return cast(ModelResult[OutputT], result_type(
            output=output, tier=tier.name, kind=tier.kind, provider=attempt.provider,
            model=attempt.model, usage=attempt.usage, cost_usd=attempt.cost_usd,
            latency_ms=(self._clock() - started) * 1000, tiers_tried=tried,
        ))

    def _escalate(self, why: str, tried: list[TierAttempt], started: float) -> NeedsHuman:
        self.metrics.gateway_outcomes.labels("human").inc()
        failures = ", ".join(f"{t.tier}={t.outcome}" for t in tried) or "no tier configured"
        log.warning("model_escalated", reason=why, tiers=failures)
        return NeedsHuman(
            reason=f"{why} ({failures})", tiers_tried=tried,
            latency_ms=(self._clock() - started) * 1000,
        )

    def total_cost(self, tried: Sequence[TierAttempt]) -> Decimal:
        """Return what every tier tried cost together."""
        return sum((t.cost_usd for t in tried), Decimal(0))

    async def aclose(self) -> None:
        """Close every provider's connections."""
        for tier in self.tiers:
            if tier.provider is not None:
                await tier.provider.aclose()
