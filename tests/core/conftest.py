"""Helpers for gateway tests: tiers pointing at the loopback model servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import pytest
from pydantic import BaseModel, SecretStr

from core.llm import ModelGateway, ModelRequest, build_gateway
from core.llm.types import Message
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
from sandbox.models import ModelSandbox, Reply

KEY = "sk-ant-api03-test-secret-value-0123456789"


class Verdict(BaseModel):
    """The structured output used throughout the gateway tests."""

    category: Literal["billing", "auth", "other"]
    confidence: float
    summary: str


VALID = {"category": "billing", "confidence": 0.9, "summary": "payment failed"}
OK = Reply(output=VALID)


def fast_policy(**overrides: Any) -> ResilienceSettings:
    """Return a policy with short timeouts and backoff, overridable per field group."""
    timeouts = {"connect_s": 0.5, "response_s": 2.0, "total_budget_s": 5.0,
                "stream_stall_s": 0.5, **overrides.pop("timeouts", {})}
    retry = {"max_attempts": 3, "initial_backoff_s": 0.01, "max_backoff_s": 0.05,
             "jitter_s": 0.01, **overrides.pop("retry", {})}
    breaker = {"failure_threshold": 100, "cooldown_s": 30, **overrides.pop("breaker", {})}
    assert not overrides, overrides
    return ResilienceSettings(timeouts=TimeoutSettings(**timeouts), retry=RetrySettings(**retry),
                              breaker=BreakerSettings(**breaker))


def tier(sandbox: ModelSandbox, name: str, **kw: Any) -> ModelTierSettings:
    """Return a tier called `name` at the sandbox endpoint of the same name."""
    kind = kw.pop("kind", "anthropic" if name.startswith("anthropic") else "openai")
    model = kw.pop("model", "claude-sonnet-4-6" if kind == "anthropic" else "gpt-4.1")
    url = sandbox.anthropic_url(name) if kind == "anthropic" else sandbox.openai_url(name)
    return ModelTierSettings(name=name, kind=kind, model=model, base_url=kw.pop("base_url", url),
                             api_key=SecretStr(KEY), **kw)


class RuleStub:
    """A rule engine that answers only when the ticket mentions 'payment'."""

    name = "stub-rules"

    def answer(self, request: ModelRequest, schema: type[BaseModel]) -> dict[str, Any] | None:
        text = " ".join(m.content for m in request.messages)
        if "payment" in text:
            return {"category": "billing", "confidence": 0.5, "summary": "rule: payment"}
        return None


GatewayFactory = Callable[..., ModelGateway]


@pytest.fixture
async def make_gateway(sandbox: ModelSandbox, metrics: Metrics) -> AsyncIterator[GatewayFactory]:
    """Build a gateway: anthropic → openai → rules → human unless tiers are given."""
    built: list[ModelGateway] = []

    def factory(tiers: list[ModelTierSettings] | None = None, *,
                policy: ResilienceSettings | None = None, rules: Any = None,
                clock: Callable[[], float] | None = None) -> ModelGateway:
        chosen = tiers if tiers is not None else [
            tier(sandbox, "anthropic"), tier(sandbox, "openai"),
            ModelTierSettings(name="rules", kind="rules"),
            ModelTierSettings(name="human", kind="human"),
        ]
        settings = Settings(_env_file=None, resilience=policy or fast_policy(),  # type: ignore[call-arg]
                            llm=LLMSettings(tiers=chosen))
        gateway = build_gateway(settings, metrics=metrics, rule_engine=rules or RuleStub(),
                                clock=clock)
        built.append(gateway)
        return gateway

    yield factory
    for gateway in built:
        await gateway.aclose()


def request(text: str = "our payment failed", **kw: Any) -> ModelRequest:
    """Return a request with one user message."""
    return ModelRequest(system="You triage tickets.", messages=[Message(role="user", content=text)],
                        **kw)
