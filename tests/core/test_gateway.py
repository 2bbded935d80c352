"""The model gateway with the real Anthropic and OpenAI SDKs against loopback servers."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from pydantic import BaseModel

from core.errors import OutputSchemaError
from core.llm import ModelResult, NeedsHuman
from core.settings import ModelTierSettings
from sandbox.models import Hang, Malformed, ModelSandbox, Reply, Status, closed_port
from tests.core.conftest import (
    KEY,
    OK,
    VALID,
    GatewayFactory,
    Verdict,
    fast_policy,
    request,
    tier,
)


def outcomes(result: ModelResult[Verdict] | NeedsHuman) -> list[tuple[str, str]]:
    return [(t.tier, t.outcome) for t in result.tiers_tried]


async def test_primary_answers_with_a_validated_result(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.set_default("anthropic", OK)
    result = await make_gateway().generate(request(), Verdict)
    assert isinstance(result, ModelResult)
    assert result.output == Verdict(**VALID)
    assert (result.tier, result.provider, result.model) == (
        "anthropic", "anthropic", "claude-sonnet-4-6")
    assert outcomes(result) == [("anthropic", "ok")]
    assert len(sandbox.received("openai")) == 0


async def test_fallback_order_is_anthropic_openai_rules_human(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway()
    sandbox.set_default("anthropic", Status(503))
    sandbox.set_default("openai", OK)
    served = await gateway.generate(request(), Verdict)
    assert isinstance(served, ModelResult) and served.tier == "openai"
    assert outcomes(served) == [("anthropic", "upstream_5xx"), ("openai", "ok")]

    sandbox.set_default("openai", Status(500))
    served = await gateway.generate(request(), Verdict)
    assert isinstance(served, ModelResult) and served.tier == "rules"
    assert served.output.summary == "rule: payment"
    assert outcomes(served) == [
        ("anthropic", "upstream_5xx"), ("openai", "upstream_5xx"), ("rules", "ok")]

    escalated = await gateway.generate(request("how do I rotate a key?"), Verdict)
    assert isinstance(escalated, NeedsHuman)
    assert escalated.status == "needs_human"
    assert outcomes(escalated) == [
        ("anthropic", "upstream_5xx"), ("openai", "upstream_5xx"), ("rules", "no_rule_matched")]
    assert "no_rule_matched" in escalated.reason


async def test_gateway_without_human_tier_still_escalates_instead_of_raising(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.set_default("anthropic", Status(401))
    result = await make_gateway([tier(sandbox, "anthropic")]).generate(request(), Verdict)
    assert isinstance(result, NeedsHuman)
    assert outcomes(result) == [("anthropic", "auth_failed")]


async def test_sdk_retries_are_off_so_the_gateway_owns_the_only_retry_loop(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.set_default("anthropic", Status(503))
    sandbox.set_default("openai", Status(503))
    gateway = make_gateway(policy=fast_policy(retry={"max_attempts": 1}))
    await gateway.generate(request(), Verdict)
    assert len(sandbox.received("anthropic")) == 1
    assert len(sandbox.received("openai")) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retried_then_fall_back(
    sandbox: ModelSandbox, make_gateway: GatewayFactory, status: int
) -> None:
    sandbox.set_default("anthropic", Status(status))
    sandbox.set_default("openai", OK)
    result = await make_gateway().generate(request(), Verdict)
    assert len(sandbox.received("anthropic")) == 3
    assert result.tiers_tried[0].attempts == 3
    assert isinstance(result, ModelResult) and result.tier == "openai"


async def test_transient_failure_then_success_stays_on_the_same_tier(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.script("anthropic", Status(503), Status(500), OK)
    result = await make_gateway().generate(request(), Verdict)
    assert isinstance(result, ModelResult) and result.tier == "anthropic"
    assert result.tiers_tried[0].attempts == 3
    assert len(sandbox.received("openai")) == 0


@pytest.mark.parametrize(("status", "code"), [
    (400, "invalid_request"), (401, "auth_failed"), (403, "auth_failed"),
    (404, "not_found"), (422, "invalid_request"),
])
async def test_permanent_errors_are_not_retried(
    sandbox: ModelSandbox, make_gateway: GatewayFactory, status: int, code: str
) -> None:
    sandbox.script("anthropic", Status(status))
    sandbox.set_default("openai", OK)
    result = await make_gateway().generate(request(), Verdict)
    assert len(sandbox.received("anthropic")) == 1
    assert outcomes(result) == [("anthropic", code), ("openai", "ok")]


async def test_429_retry_after_is_honoured(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.script("anthropic", Status(429, retry_after="0.3"), OK)
    started = time.perf_counter()
    result = await make_gateway().generate(request(), Verdict)
    elapsed = time.perf_counter() - started
    assert isinstance(result, ModelResult) and result.tier == "anthropic"
    assert len(sandbox.received("anthropic")) == 2
    assert elapsed >= 0.3


async def test_429_without_retry_after_backs_off_and_retries(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.script("anthropic", Status(429), Status(429), OK)
    result = await make_gateway().generate(request(), Verdict)
    assert isinstance(result, ModelResult) and result.tier == "anthropic"
    assert len(sandbox.received("anthropic")) == 3


async def test_retry_after_beyond_the_budget_is_not_waited_for(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.script("anthropic", Status(429, retry_after="30"))
    sandbox.set_default("openai", OK)
    gateway = make_gateway(policy=fast_policy(timeouts={"total_budget_s": 2.0}))
    started = time.perf_counter()
    result = await gateway.generate(request(), Verdict)
    assert time.perf_counter() - started < 1.0
    assert outcomes(result) == [("anthropic", "rate_limited"), ("openai", "ok")]
    assert len(sandbox.received("anthropic")) == 1


async def test_connection_refused_falls_back(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    dead = tier(sandbox, "anthropic", base_url=f"http://127.0.0.1:{closed_port()}")
    sandbox.set_default("openai", OK)
    result = await make_gateway([dead, tier(sandbox, "openai")]).generate(request(), Verdict)
    assert outcomes(result) == [("anthropic", "connection_failed"), ("openai", "ok")]
    assert result.tiers_tried[0].attempts == 3


async def test_a_hang_times_out_within_the_total_budget(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.set_default("anthropic", Hang(10))
    sandbox.set_default("openai", OK)
    policy = fast_policy(timeouts={"connect_s": 0.2, "response_s": 0.3, "total_budget_s": 0.8})
    started = time.perf_counter()
    result = await make_gateway(policy=policy).generate(request(), Verdict)
    hung = result.tiers_tried[0]
    assert hung.outcome in ("response_timeout", "deadline_exceeded")
    assert hung.latency_ms <= 800 + 100  # the budget, plus scheduling slack
    assert time.perf_counter() - started < 1.5
    assert isinstance(result, ModelResult) and result.tier == "openai"


async def test_total_budget_bounds_retries_and_waits(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.set_default("anthropic", Hang(10))
    policy = fast_policy(
        timeouts={"connect_s": 0.1, "response_s": 0.25, "total_budget_s": 0.6},
        retry={"max_attempts": 10, "initial_backoff_s": 0.05},
    )
    started = time.perf_counter()
    result = await make_gateway([tier(sandbox, "anthropic")], policy=policy).generate(
        request(), Verdict)
    elapsed = time.perf_counter() - started
    assert isinstance(result, NeedsHuman)
    assert elapsed < 0.6 + 0.15
    assert result.tiers_tried[0].outcome == "deadline_exceeded"


async def test_malformed_json_is_a_bad_response_not_retried(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.script("anthropic", Malformed())
    sandbox.script("openai", Malformed())
    result = await make_gateway().generate(request(), Verdict)
    assert outcomes(result) == [
        ("anthropic", "bad_response"), ("openai", "bad_response"), ("rules", "ok")]
    assert len(sandbox.received("anthropic")) == 1


async def test_schema_invalid_output_moves_to_the_next_tier_and_still_costs(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.script("anthropic", Reply(output={"category": "weather"}, input_tokens=1000,
                                      output_tokens=10))
    sandbox.set_default("openai", OK)
    gateway = make_gateway()
    result = await gateway.generate(request(), Verdict)
    assert outcomes(result) == [("anthropic", "output_schema_violation"), ("openai", "ok")]
    failed = result.tiers_tried[0]
    assert failed.usage.input_tokens == 1000
    assert failed.cost_usd == Decimal(1000 * 3 + 10 * 15) / Decimal(1_000_000)
    assert gateway.total_cost(result.tiers_tried) == failed.cost_usd + result.cost_usd
    assert "category" in (failed.error or "")


async def test_text_that_is_not_json_is_a_bad_response(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.script("openai", Reply(text="Sure! The category is billing."))
    result = await make_gateway([tier(sandbox, "openai")]).generate(request(), Verdict)
    assert outcomes(result) == [("openai", "bad_response")]


async def test_request_validator_rejection_moves_on(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    seen: list[str] = []

    def only_auth(output: BaseModel) -> None:
        assert isinstance(output, Verdict)
        seen.append(output.category)
        if output.category != "auth":
            raise OutputSchemaError("cites something that was not gathered")

    sandbox.script("anthropic", OK)
    sandbox.script("openai", Reply(output={**VALID, "category": "auth"}))
    result = await make_gateway().generate(request(validator=only_auth), Verdict)
    assert outcomes(result) == [("anthropic", "output_schema_violation"), ("openai", "ok")]
    assert seen == ["billing", "auth"]


async def test_cost_and_tokens_are_exact_for_anthropic_including_cache(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.script("anthropic", Reply(output=VALID, input_tokens=1234, output_tokens=321,
                                      cache_read_tokens=2000, cache_write_tokens=500))
    gateway = make_gateway()
    result = await gateway.generate(request(), Verdict)
    assert isinstance(result, ModelResult)
    usage = result.usage
    assert (usage.input_tokens, usage.output_tokens) == (1234, 321)
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (2000, 500)
    expected = (Decimal(1234) * 3 + Decimal(321) * 15 + Decimal(2000) * Decimal("0.30")
                + Decimal(500) * Decimal("3.75")) / Decimal(1_000_000)
    assert result.cost_usd == expected
    tokens = gateway.metrics.model_tokens
    assert tokens.labels("anthropic", "anthropic", "cache_read")._value.get() == 2000
    assert tokens.labels("anthropic", "anthropic", "cache_write")._value.get() == 500
    assert gateway.metrics.model_cost_usd.labels("anthropic", "anthropic")._value.get() == \
        pytest.approx(float(expected))


async def test_cost_and_tokens_are_exact_for_openai_cached_prompt(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    # the server reports prompt_tokens = 700 uncached + 300 cached
    sandbox.script("openai", Reply(output=VALID, input_tokens=700, output_tokens=50,
                                   cache_read_tokens=300))
    result = await make_gateway([tier(sandbox, "openai")]).generate(request(), Verdict)
    assert isinstance(result, ModelResult)
    assert (result.usage.input_tokens, result.usage.cache_read_tokens) == (700, 300)
    assert result.usage.output_tokens == 50
    expected = (Decimal(700) * 2 + Decimal(300) * Decimal("0.50") + Decimal(50) * 8) / 10**6
    assert result.cost_usd == expected


async def test_sensitive_requests_only_reach_in_house_tiers(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.set_default("selfhosted", OK)
    tiers = [tier(sandbox, "anthropic"), tier(sandbox, "openai"),
             tier(sandbox, "selfhosted", model="llama-3.3-70b", in_house=True),
             ModelTierSettings(name="human", kind="human")]
    result = await make_gateway(tiers).generate(request(sensitive=True), Verdict)
    assert isinstance(result, ModelResult) and result.tier == "selfhosted"
    assert result.provider == "selfhosted"
    assert outcomes(result) == [("anthropic", "skipped:not_in_house"),
                                ("openai", "skipped:not_in_house"), ("selfhosted", "ok")]
    assert sandbox.received("anthropic") == [] and sandbox.received("openai") == []


async def test_sensitive_request_with_no_in_house_model_goes_to_rules_then_human(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    result = await make_gateway().generate(request("no keyword", sensitive=True), Verdict)
    assert isinstance(result, NeedsHuman)
    assert sandbox.received("anthropic") == []


async def test_requests_carry_the_structure_and_the_configured_key(
    sandbox: ModelSandbox, make_gateway: GatewayFactory
) -> None:
    sandbox.script("anthropic", Status(500), Status(500), Status(500))
    sandbox.set_default("openai", OK)
    await make_gateway().generate(request(max_tokens=333), Verdict)
    sent = sandbox.received("anthropic")[0]
    body = sent["body"]
    assert body["tool_choice"] == {"type": "tool", "name": "submit_output"}
    assert body["tools"][0]["input_schema"]["properties"].keys() == {
        "category", "confidence", "summary"}
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["max_tokens"] == 333
    assert sent["headers"]["authorization"] == f"Bearer {KEY}"
    openai_body = sandbox.received("openai")[0]["body"]
    assert openai_body["response_format"]["type"] == "json_schema"
    assert openai_body["messages"][0] == {"role": "system", "content": "You triage tickets."}
    assert sandbox.received("openai")[0]["headers"]["authorization"] == f"Bearer {KEY}"
