"""Streaming with stall detection, and the breaker as seen through the gateway."""

from __future__ import annotations

import json
import time
from typing import Any

from core.llm import (
    CompletedEvent,
    EscalatedEvent,
    FailedEvent,
    FallbackEvent,
    ModelGateway,
    ModelResult,
    TokenEvent,
)
from core.llm.types import ModelRequest
from core.settings import ModelTierSettings
from sandbox.models import Hang, ModelSandbox, Reply, Status, StreamCut, StreamStall
from tests.core.conftest import OK, VALID, GatewayFactory, Verdict, fast_policy, request, tier


async def collect(gateway: ModelGateway, req: ModelRequest | None = None) -> list[Any]:
    return [event async for event in gateway.stream(req or request(), Verdict)]


def kinds(events: list[Any]) -> list[str]:
    return [e.kind for e in events]


async def test_stream_delivers_tokens_in_order_then_a_validated_result(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.set_default("anthropic", Reply(output=VALID, chunk_chars=5, input_tokens=400,
                                           output_tokens=60, cache_read_tokens=100))
    events = await collect(make_gateway())
    tokens = [e.text for e in events if isinstance(e, TokenEvent)]
    assert len(tokens) > 3
    assert json.loads("".join(tokens)) == VALID
    final = events[-1]
    assert isinstance(final, CompletedEvent)
    assert final.result.output == Verdict(**VALID)
    usage = final.result.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens) == (400, 60, 100)
    assert sandbox.received("anthropic")[0]["body"]["stream"] is True


async def test_openai_stream_reports_usage(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.set_default("openai", Reply(output=VALID, input_tokens=90, output_tokens=30,
                                        cache_read_tokens=10))
    events = await collect(make_gateway([tier(sandbox, "openai")]))
    final = events[-1]
    assert isinstance(final, CompletedEvent)
    assert (final.result.usage.input_tokens, final.result.usage.cache_read_tokens) == (90, 10)
    assert final.result.usage.output_tokens == 30
    body = sandbox.received("openai")[0]["body"]
    assert body["stream_options"] == {"include_usage": True}


async def test_failure_before_the_first_token_falls_back(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.set_default("anthropic", Status(503))
    sandbox.set_default("openai", OK)
    events = await collect(make_gateway())
    assert kinds(events)[0] == "fallback"
    fallback = events[0]
    assert isinstance(fallback, FallbackEvent)
    assert fallback.attempt.outcome == "upstream_5xx"
    assert isinstance(events[-1], CompletedEvent)
    assert events[-1].result.tier == "openai"


async def test_stall_before_the_first_token_falls_back(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.set_default("anthropic", StreamStall(OK, after=0, seconds=5))
    sandbox.set_default("openai", OK)
    policy = fast_policy(timeouts={"stream_stall_s": 0.2}, retry={"max_attempts": 1})
    started = time.perf_counter()
    events = await collect(make_gateway(policy=policy))
    assert time.perf_counter() - started < 2
    assert isinstance(events[0], FallbackEvent)
    assert events[0].attempt.outcome == "stream_stalled"
    assert isinstance(events[-1], CompletedEvent) and events[-1].result.tier == "openai"


async def test_stream_cut_after_tokens_is_reported_not_passed_off_as_success(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.set_default("anthropic", StreamCut(Reply(output=VALID, chunk_chars=4), after=3))
    sandbox.set_default("openai", OK)
    events = await collect(make_gateway())
    assert not any(isinstance(e, CompletedEvent) for e in events)
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert len(tokens) == 3
    failed = events[-1]
    assert isinstance(failed, FailedEvent)
    assert (failed.code, failed.cause) == ("stream_interrupted", "connection_failed")
    assert failed.partial_text == "".join(t.text for t in tokens)
    # no silent switch to another tier once output was delivered
    assert sandbox.received("openai") == []


async def test_stall_after_tokens_is_reported(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.set_default("anthropic", StreamStall(Reply(output=VALID, chunk_chars=4), after=2,
                                                 seconds=5))
    policy = fast_policy(timeouts={"stream_stall_s": 0.2})
    started = time.perf_counter()
    events = await collect(make_gateway(policy=policy))
    assert time.perf_counter() - started < 2
    failed = events[-1]
    assert isinstance(failed, FailedEvent) and failed.cause == "stream_stalled"
    assert failed.tiers_tried[-1].outcome == "stream_interrupted"


async def test_schema_invalid_streamed_output_is_reported(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.set_default("anthropic", Reply(output={"category": "nope"}))
    events = await collect(make_gateway())
    failed = events[-1]
    assert isinstance(failed, FailedEvent) and failed.cause == "output_schema_violation"


async def test_stream_escalates_when_no_tier_can_start(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.set_default("anthropic", Status(500))
    sandbox.set_default("openai", Status(401))
    events = await collect(make_gateway(), request("no keyword here"))
    assert kinds(events) == ["fallback", "fallback", "fallback", "escalated"]
    assert isinstance(events[-1], EscalatedEvent)


async def test_rules_tier_streams_its_answer(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.set_default("anthropic", Status(503))
    sandbox.set_default("openai", Status(503))
    events = await collect(make_gateway())
    final = events[-1]
    assert isinstance(final, CompletedEvent) and final.result.tier == "rules"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_breaker_opens_refuses_instantly_half_opens_and_closes(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    clock = FakeClock()
    policy = fast_policy(retry={"max_attempts": 1},
                         breaker={"failure_threshold": 2, "cooldown_s": 30})
    gateway = make_gateway([tier(sandbox, "anthropic"), tier(sandbox, "openai"),
                            ModelTierSettings(name="human", kind="human")],
                           policy=policy, clock=clock)
    sandbox.set_default("anthropic", Status(503))
    sandbox.set_default("openai", OK)
    for _ in range(2):
        await gateway.generate(request(), Verdict)
    assert len(sandbox.received("anthropic")) == 2
    breaker = gateway.tiers[0].policy.breaker
    assert breaker is not None
    assert (await breaker.state()).status == "open"

    # while open: refused at once, the server never sees the call
    sandbox.set_default("anthropic", Hang(10))
    started = time.perf_counter()
    result = await gateway.generate(request(), Verdict)
    assert time.perf_counter() - started < 0.5
    assert [t.outcome for t in result.tiers_tried] == ["circuit_open", "ok"]
    assert len(sandbox.received("anthropic")) == 2

    # after the cooldown: one probe; its failure reopens the breaker
    clock.now += 31
    sandbox.set_default("anthropic", Status(503))
    await gateway.generate(request(), Verdict)
    assert len(sandbox.received("anthropic")) == 3
    assert (await breaker.state()).status == "open"

    # next cooldown: the probe succeeds and the breaker closes
    clock.now += 31
    sandbox.set_default("anthropic", OK)
    result = await gateway.generate(request(), Verdict)
    assert isinstance(result, ModelResult) and result.tier == "anthropic"
    assert (await breaker.state()).status == "closed"
    assert gateway.metrics.breaker_state.labels("model:anthropic")._value.get() == 0
    transitions = gateway.metrics.breaker_transitions
    assert transitions.labels("model:anthropic", "open")._value.get() == 2
    assert transitions.labels("model:anthropic", "half_open")._value.get() == 2
    assert transitions.labels("model:anthropic", "closed")._value.get() == 1


async def test_breakers_are_per_tier(sandbox: ModelSandbox, make_gateway: GatewayFactory) -> None:
    policy = fast_policy(retry={"max_attempts": 1}, breaker={"failure_threshold": 1})
    gateway = make_gateway(policy=policy)
    sandbox.set_default("anthropic", Status(503))
    sandbox.set_default("openai", OK)
    await gateway.generate(request(), Verdict)
    result = await gateway.generate(request(), Verdict)
    assert [t.outcome for t in result.tiers_tried] == ["circuit_open", "ok"]
    assert len(sandbox.received("openai")) == 2
