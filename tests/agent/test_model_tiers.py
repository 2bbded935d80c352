"""The graph with model tiers served by the loopback Anthropic/OpenAI servers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from core.settings import (
    AgentSettings,
    LLMSettings,
    ModelTierSettings,
    ResilienceSettings,
    RetrySettings,
    Settings,
    TimeoutSettings,
    load_settings,
)
from sandbox.cases import load_case
from sandbox.models import ModelSandbox, Reply, Status
from sandbox.world import SandboxWorld
from tests.agent.conftest import case_path, investigating

CASE = "pub-06-card-declined"
INVOICE = ("stripe", "in_1V7GxguaHb7WnX3c4DMUgdYk")
ERRORS = ("clickhouse", "errors:payment_required")


def diagnosis(cited: list[tuple[str, str]], *, followup: list[dict[str, Any]] | None = None,
              root_cause: str = "billing.payment_failed", **extra: Any) -> dict[str, Any]:
    return {
        "root_cause": root_cause, "severity": "high", "confidence": 0.9,
        "summary": "Renewal payment failed; subscription past due; requests get 402.",
        "cited": [{"source": s, "ref": r} for s, r in cited],
        "reply_draft": "Please pay the open invoice.",
        "actions": [{"type": "send_customer_reply", "reason": "explain"},
                    {"type": "delete_workspace", "reason": "not an action type"}],
        "escalate": False, "followup": followup or [], **extra,
    }


@pytest.fixture
def model_settings(sandbox: ModelSandbox, tmp_path: Path) -> Settings:
    key = SecretStr("sk-test-key-for-the-sandbox-0001")
    return load_settings(
        None, data_dir=tmp_path,
        resilience=ResilienceSettings(
            timeouts=TimeoutSettings(connect_s=0.5, response_s=3, total_budget_s=5),
            retry=RetrySettings(max_attempts=2, initial_backoff_s=0.01, jitter_s=0.01)),
        llm=LLMSettings(tiers=[
            ModelTierSettings(name="anthropic", kind="anthropic", model="claude-sonnet-4-6",
                              base_url=sandbox.anthropic_url(), api_key=key),
            ModelTierSettings(name="openai", kind="openai", model="gpt-4.1",
                              base_url=sandbox.openai_url(), api_key=key),
            ModelTierSettings(name="rules", kind="rules"),
            ModelTierSettings(name="human", kind="human"),
        ]),
        agent=AgentSettings(followup_max_rounds=2, followup_max_calls=3),
    )


async def run(world: SandboxWorld, settings: Settings) -> dict[str, Any]:
    case = load_case(case_path(CASE))
    async with investigating(world, settings) as inv:
        return await inv.investigate(case.case.ticket)


def window_params(world: SandboxWorld) -> dict[str, str]:
    created = world.case.case.ticket.created_at
    return {"since": (created.replace(hour=0, minute=0)).isoformat(),
            "until": created.isoformat()}


async def test_model_answer_with_a_follow_up_round(
    sandbox: ModelSandbox, model_settings: Settings, world_of: Callable[[str], SandboxWorld]
) -> None:
    world = world_of(CASE)
    ask = {"source": "clickhouse", "operation": "latency_percentiles",
           "params": {"workspace_id": "ws_birchwood", **window_params(world)}}
    sandbox.script("anthropic",
                   Reply(output=diagnosis([INVOICE], followup=[ask])),
                   Reply(output=diagnosis([INVOICE, ERRORS])))
    record = await run(world, model_settings)
    assert record["tier"] == "anthropic"
    assert record["diagnosis"]["root_cause"] == "billing.payment_failed"
    requests = sandbox.received("anthropic")
    assert len(requests) == 2
    # the second prompt carries the follow-up query's evidence
    second = requests[1]["body"]["messages"][0]["content"]
    assert "latency" in second
    assert any(c["operation"] == "latency_percentiles" for c in record["calls"])
    # actions outside the spec are dropped and recorded
    assert [a["type"] for a in record["actions"]] == ["send_customer_reply"]
    assert record["dropped_actions"][0]["type"] == "delete_workspace"
    # the model never saw instructions from the rule context
    assert "RuleInput" not in second


async def test_invalid_citation_moves_on_to_the_next_tier(
    sandbox: ModelSandbox, model_settings: Settings, world_of: Callable[[str], SandboxWorld]
) -> None:
    sandbox.script("anthropic", Reply(output=diagnosis([INVOICE, ("stripe", "in_NEVERSEEN")])))
    sandbox.script("openai", Reply(output=diagnosis([INVOICE, ERRORS])))
    record = await run(world_of(CASE), model_settings)
    assert record["tier"] == "openai"
    outcomes = [(t["tier"], t["outcome"]) for t in record["tiers_tried"]]
    assert outcomes == [("anthropic", "output_schema_violation"), ("openai", "ok")]


async def test_schema_invalid_output_falls_through_to_rules(
    sandbox: ModelSandbox, model_settings: Settings, world_of: Callable[[str], SandboxWorld]
) -> None:
    sandbox.script("anthropic", Reply(output={"root_cause": "weather", "severity": "extreme"}))
    sandbox.script("openai", Reply(text="I think it's billing."))
    record = await run(world_of(CASE), model_settings)
    assert record["tier"] == "rules"
    assert record["diagnosis"]["root_cause"] == "billing.payment_failed"
    assert [t["outcome"] for t in record["tiers_tried"]] == [
        "output_schema_violation", "bad_response", "ok"]


async def test_provider_outage_forces_fallback_down_to_rules(
    sandbox: ModelSandbox, model_settings: Settings, world_of: Callable[[str], SandboxWorld]
) -> None:
    sandbox.set_default("anthropic", Status(529))
    sandbox.set_default("openai", Status(503))
    record = await run(world_of(CASE), model_settings)
    assert record["tier"] == "rules"
    assert [t["outcome"] for t in record["tiers_tried"]] == ["upstream_5xx", "upstream_5xx", "ok"]
    assert record["diagnosis"]["root_cause"] == "billing.payment_failed"


def latency(world: SandboxWorld, provider: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"workspace_id": "ws_birchwood", **window_params(world)}
    if provider:
        params["provider"] = provider
    return {"source": "clickhouse", "operation": "latency_percentiles", "params": params}


async def test_follow_ups_refuse_duplicates_and_unknown_operations(
    sandbox: ModelSandbox, model_settings: Settings, world_of: Callable[[str], SandboxWorld]
) -> None:
    world = world_of(CASE)
    duplicate = {"source": "stripe", "operation": "subscriptions",
                 "params": {"customer_id": "cus_8tHI1tN5ajHMuC"}}
    unknown = {"source": "stripe", "operation": "delete_customer",
               "params": {"customer_id": "cus_8tHI1tN5ajHMuC"}}
    sandbox.script("anthropic",
                   Reply(output=diagnosis([INVOICE], followup=[duplicate, unknown,
                                                               latency(world)])),
                   Reply(output=diagnosis([INVOICE, ERRORS])))
    record = await run(world, model_settings)
    reasons = [(r["operation"], r["reason"]) for r in record["followup_refused"]]
    assert reasons == [("subscriptions", "duplicate call"),
                       ("delete_customer", "unknown operation")]
    assert len(sandbox.received("anthropic")) == 2
    assert sum(c["operation"] == "latency_percentiles" for c in record["calls"]) == 1


async def test_follow_up_rounds_are_bounded(
    sandbox: ModelSandbox, model_settings: Settings, world_of: Callable[[str], SandboxWorld]
) -> None:
    world = world_of(CASE)
    sandbox.script("anthropic",
                   Reply(output=diagnosis([INVOICE], followup=[latency(world)])),
                   Reply(output=diagnosis([INVOICE], followup=[latency(world, "google")])),
                   Reply(output=diagnosis([INVOICE], followup=[latency(world, "bedrock")])))
    sandbox.set_default("anthropic", Reply(output=diagnosis([INVOICE, ERRORS])))
    record = await run(world, model_settings)  # two rounds allowed
    assert len(sandbox.received("anthropic")) == 3
    assert [(r["operation"], r["reason"]) for r in record["followup_refused"]] == [
        ("latency_percentiles", "no follow-up rounds left")]
    assert record["tier"] == "anthropic"


async def test_follow_up_calls_are_bounded(
    sandbox: ModelSandbox, model_settings: Settings, world_of: Callable[[str], SandboxWorld]
) -> None:
    world = world_of(CASE)
    asks = [latency(world, p) for p in (None, "google", "bedrock", "azure-openai")]
    sandbox.script("anthropic", Reply(output=diagnosis([INVOICE], followup=asks)),
                   Reply(output=diagnosis([INVOICE, ERRORS])))
    record = await run(world, model_settings)  # three follow-up calls allowed
    assert sum(c["operation"] == "latency_percentiles" for c in record["calls"]) == 3
    assert [r["reason"] for r in record["followup_refused"]] == ["follow-up call budget spent"]
