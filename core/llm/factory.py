"""Build the model gateway from settings."""

from __future__ import annotations

from collections.abc import Callable

from core.llm.gateway import ModelGateway, Tier
from core.llm.pricing import PriceTable
from core.llm.providers.anthropic import AnthropicProvider
from core.llm.providers.base import ModelProvider
from core.llm.providers.openai import OpenAIProvider
from core.llm.providers.rules import NoRules, RuleEngine, RulesProvider
from core.resilience import (
    BreakerEvents,
    BreakerStore,
    CircuitBreaker,
    InMemoryBreakerStore,
    ResiliencePolicy,
)
from core.settings import ModelTierSettings, Settings
from core.telemetry import Metrics


def configured(tier: ModelTierSettings) -> bool:
    """Say whether a tier can be called: model tiers need a key or a base_url of their own."""
    if tier.kind not in ("anthropic", "openai"):
        return True
    return tier.api_key is not None or tier.base_url is not None


def build_provider(tier: ModelTierSettings, rule_engine: RuleEngine) -> ModelProvider | None:
    """Return the provider for one tier (None for the human tier)."""
    if tier.kind == "anthropic":
        return AnthropicProvider(tier)
    if tier.kind == "openai":
        return OpenAIProvider(tier)
    if tier.kind == "rules":
        return RulesProvider(rule_engine)
    return None


def build_gateway(
    settings: Settings,
    *,
    metrics: Metrics,
    rule_engine: RuleEngine | None = None,
    breaker_store: BreakerStore | None = None,
    clock: Callable[[], float] | None = None,
) -> ModelGateway:
    """Return a gateway with one breaker and one policy per enabled tier."""
    store = breaker_store or InMemoryBreakerStore()
    events = BreakerEvents(on_change=[metrics.breaker_changed])
    engine = rule_engine or NoRules()
    tiers: list[Tier] = []
    for tier_settings in settings.llm.tiers:
        if not tier_settings.enabled or not configured(tier_settings):
            continue
        policy_settings = settings.resilience_for(tier_settings)
        breaker = CircuitBreaker(
            f"model:{tier_settings.name}", policy_settings.breaker, store, events=events,
            **({"clock": clock} if clock else {}),
        )
        policy = ResiliencePolicy(
            f"model:{tier_settings.name}", policy_settings, breaker,
            on_attempt=lambda name, rec: metrics.attempt_seconds.labels(
                name, rec.outcome).observe(rec.duration_s),
        )
        tiers.append(Tier(
            settings=tier_settings,
            provider=build_provider(tier_settings, engine),
            policy=policy,
            stall_s=policy_settings.timeouts.stream_stall_s,
        ))
    return ModelGateway(tiers, prices=PriceTable(settings.llm.prices), metrics=metrics)
