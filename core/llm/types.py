"""Requests and results of the model gateway."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

OutputT = TypeVar("OutputT", bound=BaseModel)


class Message(BaseModel):
    """One turn of the conversation sent to a model."""

    model_config = ConfigDict(frozen=True)

    role: Literal["user", "assistant"]
    content: str


class ModelRequest(BaseModel):
    """What the caller asks of the gateway; the output schema is passed beside it."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    system: str = ""
    messages: list[Message]
    task: str = Field("generic", description="names the job, e.g. 'diagnose'; rules key on it")
    sensitive: bool = Field(False, description="only tiers that keep data in-house may see it")
    cache_system_prompt: bool = Field(True, description="mark the system prompt cacheable")
    max_tokens: int | None = None
    context: dict[str, Any] = Field(
        default_factory=dict, description="structured input for the rule tier; not sent to models"
    )
    investigation_id: str | None = None
    # Extra check after schema validation (e.g. cited refs must exist); raise to reject.
    validator: Callable[[BaseModel], None] | None = Field(default=None, exclude=True)


class Usage(BaseModel):
    """Token counts, normalised across providers.

    `input_tokens` counts uncached input only; cache reads and writes are apart,
    so cost = sum(count x price) with no double counting.
    """

    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
        )


class RawCompletion(BaseModel):
    """What a provider returned, before schema validation."""

    content: Any
    usage: Usage = Usage()
    model: str = ""
    response_id: str | None = None


class TierAttempt(BaseModel):
    """One tier's part in serving a request."""

    tier: str
    kind: str
    provider: str
    model: str
    outcome: str  # "ok", "skipped:<reason>" or an error code
    error: str | None = None
    latency_ms: float = 0.0
    attempts: int = 0
    usage: Usage = Usage()
    cost_usd: Decimal = Decimal(0)


class ModelResult(BaseModel, Generic[OutputT]):
    """A validated answer and what it took to get it."""

    status: Literal["completed"] = "completed"
    output: OutputT
    tier: str
    kind: str
    provider: str
    model: str
    usage: Usage
    cost_usd: Decimal
    latency_ms: float
    tiers_tried: list[TierAttempt]


class NeedsHuman(BaseModel):
    """No tier could answer; a person has to take over. Never raised, always returned."""

    status: Literal["needs_human"] = "needs_human"
    tier: str = "human"
    reason: str
    tiers_tried: list[TierAttempt]
    latency_ms: float = 0.0


GatewayOutcome = ModelResult[OutputT] | NeedsHuman


class TokenEvent(BaseModel):
    """Part of the output, as it streams in."""

    kind: Literal["token"] = "token"
    tier: str
    text: str


class FallbackEvent(BaseModel):
    """A tier failed before its first token; the next one is tried."""

    kind: Literal["fallback"] = "fallback"
    attempt: TierAttempt


class CompletedEvent(BaseModel, Generic[OutputT]):
    """The stream ended and its output validated."""

    kind: Literal["completed"] = "completed"
    result: ModelResult[OutputT]


class FailedEvent(BaseModel):
    """The stream failed after tokens were delivered: reported, never passed off as success."""

    kind: Literal["failed"] = "failed"
    tier: str
    code: str  # always stream_interrupted
    cause: str  # the code of what broke the stream
    message: str
    partial_text: str
    tiers_tried: list[TierAttempt]


class EscalatedEvent(BaseModel):
    """No tier could stream an answer; a person has to take over."""

    kind: Literal["escalated"] = "escalated"
    result: NeedsHuman
