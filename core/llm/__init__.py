"""The model gateway: ordered tiers, fallback, validation, accounting."""

from core.llm.factory import build_gateway
from core.llm.gateway import ModelGateway, Tier, validate_output
from core.llm.pricing import PriceTable
from core.llm.providers.rules import NoRules, RuleEngine
from core.llm.types import (
    CompletedEvent,
    EscalatedEvent,
    FailedEvent,
    FallbackEvent,
    Message,
    ModelRequest,
    ModelResult,
    NeedsHuman,
    TierAttempt,
    TokenEvent,
    Usage,
)

__all__ = [
    "CompletedEvent",
    "EscalatedEvent",
    "FailedEvent",
    "FallbackEvent",
    "Message",
    "ModelGateway",
    "ModelRequest",
    "ModelResult",
    "NeedsHuman",
    "NoRules",
    "PriceTable",
    "RuleEngine",
    "Tier",
    "TierAttempt",
    "TokenEvent",
    "Usage",
    "build_gateway",
    "validate_output",
]
