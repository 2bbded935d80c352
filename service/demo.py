"""The gateway demo: real SDKs against the loopback model servers, with faults injected."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, SecretStr

from core.llm import (
    CompletedEvent,
    EscalatedEvent,
    FailedEvent,
    Message,
    ModelGateway,
    ModelRequest,
    NeedsHuman,
    TierAttempt,
    TokenEvent,
    build_gateway,
)
from core.settings import (
    BreakerSettings,
    LLMSettings,
    ModelTierSettings,
    ResilienceSettings,
    RetrySettings,
    Settings,
    TimeoutSettings,
)
from core.telemetry import Metrics
from sandbox.models import Malformed, ModelSandbox, Reply, Status, StreamCut


class Triage(BaseModel):
    """The structured answer the demo asks models for."""

    category: Literal["billing", "auth", "upstream", "regression", "config", "other"]
    severity: Literal["low", "medium", "high"]
    summary: str


GOOD = Reply(output={"category": "billing", "severity": "high",
                     "summary": "Invoice payment failed; requests answer 402."},
             input_tokens=1200, output_tokens=80, cache_read_tokens=900, cache_write_tokens=300)
OPENAI_GOOD = Reply(output={"category": "billing", "severity": "high",
                            "summary": "Payment failed; subscription past due."},
                    input_tokens=1100, output_tokens=70, cache_read_tokens=512)
SELFHOSTED_GOOD = Reply(output={"category": "auth", "severity": "medium",
                                "summary": "Rotated key still in use by the client."},
                        input_tokens=1500, output_tokens=90)


class DemoRules:
    """A stand-in rule engine for the demo: keyword rules over the ticket text."""

    name = "demo-keywords"

    def answer(self, request: ModelRequest, schema: type[BaseModel]) -> dict[str, Any] | None:
        """Answer from keywords, or None."""
        text = " ".join(m.content for m in request.messages).lower()
        if "402" in text or "payment" in text:
            return {"category": "billing", "severity": "high",
                    "summary": "Rule: 402 answers point at a failed payment."}
        return None


def demo_settings(sandbox: ModelSandbox) -> Settings:
    """Return settings whose model tiers all point at the loopback servers."""
    fast = ResilienceSettings(
        timeouts=TimeoutSettings(connect_s=1, response_s=2, total_budget_s=5, stream_stall_s=1),
        retry=RetrySettings(max_attempts=3, initial_backoff_s=0.05, max_backoff_s=0.5,
                            jitter_s=0.05),
        breaker=BreakerSettings(failure_threshold=3, cooldown_s=60),
    )
    key = SecretStr("sandbox-key")
    tiers = [
        ModelTierSettings(name="anthropic", kind="anthropic", model="claude-sonnet-4-6",
                          base_url=sandbox.anthropic_url("anthropic"), api_key=key),
        ModelTierSettings(name="openai", kind="openai", model="gpt-4.1",
                          base_url=sandbox.openai_url("openai"), api_key=key),
        ModelTierSettings(name="selfhosted", kind="openai", model="llama-3.3-70b-instruct",
                          base_url=sandbox.openai_url("selfhosted"), in_house=True),
        ModelTierSettings(name="rules", kind="rules"),
        ModelTierSettings(name="human", kind="human"),
    ]
    return Settings(_env_file=None, resilience=fast,
                    llm=LLMSettings(tiers=tiers))


@dataclass
class ScenarioResult:
    """What one demo scenario showed."""

    name: str
    served_by: str
    tiers: list[TierAttempt]
    latency_ms: float
    cost_usd: Decimal
    note: str


def _request(text: str, *, sensitive: bool = False) -> ModelRequest:
    return ModelRequest(
        system="You triage support tickets for an AI gateway. Answer with the structure asked.",
        messages=[Message(role="user", content=text)], task="triage", sensitive=sensitive,
    )


async def _generate(gateway: ModelGateway, name: str, text: str, note: str,
                    *, sensitive: bool = False) -> ScenarioResult:
    outcome = await gateway.generate(_request(text, sensitive=sensitive), Triage)
    if isinstance(outcome, NeedsHuman):
        return ScenarioResult(name, "human", outcome.tiers_tried, outcome.latency_ms,
                              gateway.total_cost(outcome.tiers_tried), note)
    return ScenarioResult(name, outcome.tier, outcome.tiers_tried, outcome.latency_ms,
                          gateway.total_cost(outcome.tiers_tried), note)


async def _stream(gateway: ModelGateway, name: str, note: str,
                  on_token: Callable[[str], None]) -> ScenarioResult:
    served, tiers, latency = "?", [], 0.0
    async for event in gateway.stream(_request("Our requests fail with 402"), Triage):
        if isinstance(event, TokenEvent):
            on_token(event.text)
        elif isinstance(event, CompletedEvent):
            served, tiers, latency = event.result.tier, event.result.tiers_tried, \
                event.result.latency_ms
        elif isinstance(event, FailedEvent):
            served, tiers = f"failed ({event.cause})", event.tiers_tried
        elif isinstance(event, EscalatedEvent):
            served, tiers = "human", event.result.tiers_tried
    return ScenarioResult(name, served, tiers, latency, gateway.total_cost(tiers), note)


async def run_demo(sandbox: ModelSandbox, metrics: Metrics,
                   on_token: Callable[[str], None] = lambda _t: None) -> list[ScenarioResult]:
    """Run every scenario in order and return what each showed."""
    sandbox.set_default("anthropic", GOOD)
    sandbox.set_default("openai", OPENAI_GOOD)
    sandbox.set_default("selfhosted", SELFHOSTED_GOOD)
    gateway = build_gateway(demo_settings(sandbox), metrics=metrics, rule_engine=DemoRules())
    ticket = "All our requests fail with 402 since this morning. Invoice in_1PzK?"
    results: list[ScenarioResult] = []
    try:
        results.append(await _generate(gateway, "healthy", ticket, "Anthropic answers"))
        sandbox.script("anthropic", Status(429, retry_after="0.1"))
        results.append(await _generate(gateway, "rate limited once", ticket,
                                       "429 Retry-After: 0.1 honoured, same tier retried"))
        sandbox.script("anthropic", Reply(output={"category": "weather", "severity": "high"}))
        results.append(await _generate(gateway, "schema-invalid output", ticket,
                                       "invalid output is a failure: next tier"))
        sandbox.script("anthropic", Malformed())
        results.append(await _generate(gateway, "malformed JSON", ticket,
                                       "unreadable body: next tier, no retry"))
        results.append(await _generate(gateway, "sensitive ticket", ticket,
                                       "only in-house tiers may see it", sensitive=True))
        sandbox.set_default("anthropic", Status(503))
        results.append(await _generate(gateway, "Anthropic outage", ticket,
                                       "3 attempts with backoff, then OpenAI"))
        results.append(await _generate(gateway, "breaker open", ticket,
                                       "Anthropic refused at once, no wait"))
        sandbox.set_default("openai", Status(500))
        sandbox.set_default("selfhosted", Status(502))
        results.append(await _generate(gateway, "every model down", ticket,
                                       "rule tier answers"))
        results.append(await _generate(gateway, "no rule matches", "How do I rotate keys?",
                                       "typed escalation to a person, no exception"))
    finally:
        await gateway.aclose()
    # streaming runs on a fresh gateway: the outage scenarios left breakers open
    sandbox.set_default("openai", OPENAI_GOOD)
    gateway = build_gateway(demo_settings(sandbox), metrics=metrics, rule_engine=DemoRules())
    try:
        results.append(await _stream(gateway, "streaming", "tokens streamed from OpenAI",
                                     on_token))
        sandbox.script("openai", StreamCut(OPENAI_GOOD, after=3))
        results.append(await _stream(gateway, "stream cut after tokens",
                                     "reported as a failure, never as success", on_token))
    finally:
        await gateway.aclose()
    return results
