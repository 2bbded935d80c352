"""What the model gateway costs on top of calling the provider SDKs directly.

Everything runs in one process against one loopback `ModelSandbox`, on one
asyncio loop, one call at a time:

1. Overhead: the Anthropic SDK called directly (same parameters the gateway's
   `AnthropicProvider` sends: forced tool call, same schema, then
   `Schema.model_validate`) against `gateway.generate` with that endpoint as the
   first tier; the same for OpenAI (`response_format` json_schema). Direct and
   gateway calls are interleaved in pairs, in random order within each pair, so
   drift (GC, CPU frequency, the server thread) hits both alike.
2. Open primary: a gateway [anthropic → openai] whose anthropic breaker has been
   opened by 503s, against a gateway with only the openai tier. The difference is
   the wait a caller pays for a primary that is known to be down.

Run:  .venv/bin/python -m benchmarks.gateway_overhead [--calls N] [--out FILE]

One JSON object goes to stdout (and to --out); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import platform
import pstats
import random
import statistics
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import anthropic
import httpx2
import openai
from pydantic import BaseModel, SecretStr
from rich.console import Console

from core.llm import Message, ModelGateway, ModelRequest, ModelResult, NeedsHuman, build_gateway
from core.llm.providers.anthropic import OUTPUT_TOOL
from core.llm.providers.base import schema_for
from core.resilience import BreakerStatus
from core.settings import (
    BreakerSettings,
    LLMSettings,
    ModelTierSettings,
    ResilienceSettings,
    Settings,
)
from core.telemetry import Metrics, configure_logging
from sandbox.models import ModelSandbox, Reply, Status

TARGET_ADDED_MEDIAN_MS = 2.0
TARGET_ADDED_P99_MS = 5.0
TARGET_OPEN_PRIMARY_MEDIAN_MS = 1.0

ANTHROPIC_MODEL = "claude-sonnet-4-5"
OPENAI_MODEL = "gpt-4.1"
KEY = "sandbox-key"
CORE_DIR = Path(__file__).resolve().parent.parent / "core"

console = Console(stderr=True, highlight=False)


class Verdict(BaseModel):
    """The small structured answer every call asks for."""

    category: Literal["billing", "auth", "upstream", "other"]
    severity: Literal["low", "medium", "high"]
    summary: str


REPLY = Reply(
    output={"category": "billing", "severity": "high", "summary": "Payment failed."},
    input_tokens=120, output_tokens=18,
)
SYSTEM = "You triage support tickets. Answer with the structure asked."
USER = "All our requests fail with 402 since this morning."
REQUEST = ModelRequest(system=SYSTEM, messages=[Message(role="user", content=USER)],
                       task="triage")


# -- settings and clients ----------------------------------------------------

def _resilience() -> ResilienceSettings:
    """Production defaults (timeouts, retries), with a breaker that stays open once opened."""
    return ResilienceSettings(breaker=BreakerSettings(failure_threshold=3, cooldown_s=600))


def _settings(tiers: list[ModelTierSettings]) -> Settings:
    return Settings(_env_file=None, resilience=_resilience(), llm=LLMSettings(tiers=tiers))


def _anthropic_tier(sandbox: ModelSandbox, endpoint: str) -> ModelTierSettings:
    return ModelTierSettings(name="anthropic", kind="anthropic", model=ANTHROPIC_MODEL,
                             base_url=sandbox.anthropic_url(endpoint), api_key=SecretStr(KEY))


def _openai_tier(sandbox: ModelSandbox, endpoint: str) -> ModelTierSettings:
    return ModelTierSettings(name="openai", kind="openai", model=OPENAI_MODEL,
                             base_url=sandbox.openai_url(endpoint), api_key=SecretStr(KEY))


def _timeout() -> httpx2.Timeout:
    """The timeout the gateway hands the SDK on a first attempt (connect + response)."""
    timeouts = _resilience().timeouts
    limit = min(timeouts.connect_s + timeouts.response_s, timeouts.total_budget_s)
    return httpx2.Timeout(limit, connect=min(timeouts.connect_s, limit))


def _anthropic_params() -> dict[str, Any]:
    """What `AnthropicProvider._params` sends for REQUEST and Verdict."""
    return {
        "model": ANTHROPIC_MODEL,
        "max_tokens": 2048,
        "messages": [{"role": "user", "content": USER}],
        "tools": [{
            "name": OUTPUT_TOOL,
            "description": "Return the final answer in the required structure.",
            "input_schema": schema_for(Verdict),
        }],
        "tool_choice": {"type": "tool", "name": OUTPUT_TOOL},
        "timeout": _timeout(),
        "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
    }


def _openai_params() -> dict[str, Any]:
    """What `OpenAIProvider._params` sends for REQUEST and Verdict."""
    return {
        "model": OPENAI_MODEL,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
        "max_tokens": 2048,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": Verdict.__name__, "schema": schema_for(Verdict)},
        },
        "timeout": _timeout(),
    }


# -- the calls ---------------------------------------------------------------

Call = Callable[[], Awaitable[None]]


def _direct_anthropic(client: anthropic.AsyncAnthropic) -> Call:
    params = _anthropic_params()

    async def call() -> None:
        message = await client.messages.create(**params)
        for block in message.content:
            if block.type == "tool_use" and block.name == OUTPUT_TOOL:
                Verdict.model_validate(block.input)
                return
        raise RuntimeError("direct anthropic call returned no tool call")

    return call


def _direct_openai(client: openai.AsyncOpenAI) -> Call:
    params = _openai_params()

    async def call() -> None:
        completion = await client.chat.completions.create(**params)
        text = completion.choices[0].message.content
        if not text:
            raise RuntimeError("direct openai call returned no content")
        Verdict.model_validate(json.loads(text))

    return call


def _via_gateway(gateway: ModelGateway, tier: str) -> Call:
    async def call() -> None:
        result = await gateway.generate(REQUEST, Verdict)
        if not isinstance(result, ModelResult) or result.tier != tier:
            raise RuntimeError(f"gateway call not served by {tier}: {_describe(result)}")

    return call


def _describe(result: ModelResult[Verdict] | NeedsHuman) -> str:
    return ", ".join(f"{t.tier}={t.outcome}" for t in result.tiers_tried)


# -- measuring ---------------------------------------------------------------

def _percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _summary(ns: list[int]) -> dict[str, float | int]:
    ms = [v / 1e6 for v in ns]
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 4),
        "p90_ms": round(_percentile(ms, 90), 4),
        "p99_ms": round(_percentile(ms, 99), 4),
        "mean_ms": round(statistics.fmean(ms), 4),
        "min_ms": round(min(ms), 4),
        "max_ms": round(max(ms), 4),
    }


async def _timed(call: Call) -> int:
    start = time.perf_counter_ns()
    await call()
    return time.perf_counter_ns() - start


async def _paired(
    a: Call, b: Call, *, calls: int, warmup: int, rng: random.Random,
    budget_s: float | None = None, label: str = "",
) -> tuple[list[int], list[int], bool]:
    """Run `a` and `b` in pairs (random order within a pair); return their times in ns.

    Stops early (third value True) when `budget_s` of measuring has passed.
    """
    for _ in range(warmup):
        await a()
        await b()
    gc.collect()
    a_ns: list[int] = []
    b_ns: list[int] = []
    started = time.monotonic()
    step = max(1, calls // 4)
    for i in range(calls):
        if rng.random() < 0.5:
            a_ns.append(await _timed(a))
            b_ns.append(await _timed(b))
        else:
            b_ns.append(await _timed(b))
            a_ns.append(await _timed(a))
        if label and (i + 1) % step == 0:
            console.print(f"  {label}: {i + 1}/{calls} pairs")
        if budget_s is not None and time.monotonic() - started > budget_s:
            return a_ns, b_ns, True
    return a_ns, b_ns, False


def _compare(direct_ns: list[int], gateway_ns: list[int]) -> dict[str, Any]:
    direct, gateway = _summary(direct_ns), _summary(gateway_ns)
    diffs = [(g - d) / 1e6 for g, d in zip(gateway_ns, direct_ns, strict=True)]
    return {
        "direct": direct,
        "gateway": gateway,
        "added_median_ms": round(float(gateway["median_ms"]) - float(direct["median_ms"]), 4),
        "added_p99_ms": round(float(gateway["p99_ms"]) - float(direct["p99_ms"]), 4),
        "paired_diff_median_ms": round(statistics.median(diffs), 4),
        "paired_diff_p99_ms": round(_percentile(diffs, 99), 4),
    }


def _last_bodies_equal(sandbox: ModelSandbox, endpoint: str) -> bool:
    received = sandbox.received(endpoint)
    return len(received) >= 2 and received[-1]["body"] == received[-2]["body"]


# -- the scenarios -----------------------------------------------------------

class _Pair:
    """A direct SDK call and the same call through a gateway, on one endpoint."""

    def __init__(self, sandbox: ModelSandbox, metrics: Metrics, provider: str) -> None:
        endpoint = provider
        sandbox.set_default(endpoint, REPLY)
        self.close_direct: Callable[[], Awaitable[None]]
        if provider == "anthropic":
            tier = _anthropic_tier(sandbox, endpoint)
            a_client = anthropic.AsyncAnthropic(base_url=sandbox.anthropic_url(endpoint),
                                                api_key=KEY, max_retries=0)
            self.direct = _direct_anthropic(a_client)
            self.close_direct = a_client.close
        else:
            tier = _openai_tier(sandbox, endpoint)
            o_client = openai.AsyncOpenAI(base_url=sandbox.openai_url(endpoint), api_key=KEY,
                                          max_retries=0)
            self.direct = _direct_openai(o_client)
            self.close_direct = o_client.close
        human = ModelTierSettings(name="human", kind="human")
        self.gateway = build_gateway(_settings([tier, human]), metrics=metrics)
        self.via = _via_gateway(self.gateway, tier.name)

    async def aclose(self) -> None:
        await self.gateway.aclose()
        await self.close_direct()


async def _overhead(
    sandbox: ModelSandbox, metrics: Metrics, provider: str, *, calls: int, warmup: int,
    rng: random.Random,
) -> dict[str, Any]:
    pair = _Pair(sandbox, metrics, provider)
    try:
        # the two paths must send the very same request body
        await pair.direct()
        await pair.via()
        same_body = _last_bodies_equal(sandbox, provider)
        direct_ns, gateway_ns, _ = await _paired(
            pair.direct, pair.via, calls=calls, warmup=warmup, rng=rng, label=provider)
    finally:
        await pair.aclose()
    return {"request_bodies_identical": same_body, **_compare(direct_ns, gateway_ns)}


async def _open_primary(
    sandbox: ModelSandbox, metrics: Metrics, *, calls: int, warmup: int, rng: random.Random,
    budget_s: float,
) -> dict[str, Any]:
    down, up = "anthropic-down", "openai"
    sandbox.set_default(down, Status(503))
    sandbox.set_default(up, REPLY)
    fallback = build_gateway(
        _settings([_anthropic_tier(sandbox, down), _openai_tier(sandbox, up)]), metrics=metrics)
    baseline = build_gateway(_settings([_openai_tier(sandbox, up)]), metrics=metrics)
    checks = {"calls": 0, "served_by_openai": 0, "primary_circuit_open": 0}
    try:
        # open the primary's breaker: 3 failed attempts (503), then openai answers
        opening = await fallback.generate(REQUEST, Verdict)
        breaker = fallback.tiers[0].policy.breaker
        assert breaker is not None
        state = await breaker.state()
        if state.status is not BreakerStatus.OPEN:
            raise RuntimeError(f"primary breaker is {state.status}, not open")
        requests_after_opening = len(sandbox.received(down))

        async def via_fallback() -> None:
            result = await fallback.generate(REQUEST, Verdict)
            checks["calls"] += 1
            if not isinstance(result, ModelResult) or result.tier != "openai":
                raise RuntimeError(f"open-primary call not served by openai: {_describe(result)}")
            checks["served_by_openai"] += 1
            if result.tiers_tried[0].tier != "anthropic" \
                    or result.tiers_tried[0].outcome != "circuit_open":
                raise RuntimeError(f"primary not refused by its breaker: {_describe(result)}")
            checks["primary_circuit_open"] += 1

        via_baseline = _via_gateway(baseline, "openai")
        fb_ns, base_ns, truncated = await _paired(
            via_fallback, via_baseline, calls=calls, warmup=warmup, rng=rng,
            budget_s=budget_s, label="open primary")
        primary_requests = len(sandbox.received(down)) - requests_after_opening
    finally:
        await fallback.aclose()
        await baseline.aclose()
    cmp = _compare(base_ns, fb_ns)
    return {
        "opening_call": {"tier": opening.tier, "tiers_tried": _describe(opening),
                         "latency_ms": round(opening.latency_ms, 3)},
        "requests_reaching_open_primary": primary_requests,
        "truncated": truncated,
        "truncated_reason": (f"measuring budget of {budget_s:.0f}s spent" if truncated else None),
        "checks": checks,
        "fallback_gateway": cmp["gateway"],
        "openai_only_gateway": cmp["direct"],
        "added_wait_median_ms": cmp["added_median_ms"],
        "added_wait_p99_ms": cmp["added_p99_ms"],
        "paired_diff_median_ms": cmp["paired_diff_median_ms"],
        "paired_diff_p99_ms": cmp["paired_diff_p99_ms"],
    }


# Functions outside core/ worth naming when they show up in a gateway call.
_PROFILE_EXTRA = ("__class_getitem__", "create_generic_submodel", "model_json_schema")


def _profile_row_name(path: str, func: str) -> str | None:
    """Return how a profiled function is listed, or None to leave it out."""
    root = str(CORE_DIR)
    if path.startswith(root):
        return Path(path).relative_to(root).as_posix()
    if func in _PROFILE_EXTRA or ("tenacity" in path and func == "__call__"):
        return Path(path).name
    return None


async def _profile(sandbox: ModelSandbox, metrics: Metrics, calls: int) -> dict[str, Any]:
    """cProfile `calls` gateway calls per provider; return the gateway side's µs per call.

    As in the measurement, each gateway call follows a direct call (not profiled), so
    garbage collection runs as it does there. Only sleuth's own functions (core/) and a
    few library ones are listed: the SDK's and the event loop's are paid by the direct
    path too. cProfile inflates every time listed.
    """
    out: dict[str, Any] = {}
    for provider in ("anthropic", "openai"):
        pair = _Pair(sandbox, metrics, provider)
        profiler = cProfile.Profile()
        try:
            for _ in range(20):
                await pair.direct()
                await pair.via()
            for _ in range(calls):
                await pair.direct()
                profiler.enable()
                await pair.via()
                profiler.disable()
        finally:
            await pair.aclose()
        raw: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        rows: list[tuple[float, float, int, str]] = []
        for (path, line, func), (_cc, ncalls, tottime, cumtime, _callers) in raw.items():
            where = _profile_row_name(path, func)
            if where is not None:
                rows.append((cumtime, tottime, ncalls, f"{where}:{line}:{func}"))
        rows.sort(reverse=True)
        out[provider] = [
            {"function": name, "cum_us_per_call": round(cum / calls * 1e6, 1),
             "self_us_per_call": round(tot / calls * 1e6, 1),
             "calls_per_call": round(n / calls, 2)}
            for cum, tot, n, name in rows[:25]
        ]
    return out


# -- main --------------------------------------------------------------------

def _environment(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "calls": args.calls,
        "warmup": args.warmup,
        "seed": args.seed,
        "packages": {p: version(p) for p in ("anthropic", "openai", "httpx2", "pydantic")},
    }


def _targets(overhead: dict[str, Any], open_primary: dict[str, Any]) -> dict[str, Any]:
    med = {p: overhead[p]["added_median_ms"] for p in overhead}
    p99 = {p: overhead[p]["added_p99_ms"] for p in overhead}
    wait = open_primary["added_wait_median_ms"]
    return {
        "added_median": {"limit_ms": TARGET_ADDED_MEDIAN_MS, "measured_ms": med,
                         "pass": all(v <= TARGET_ADDED_MEDIAN_MS for v in med.values())},
        "added_p99": {"limit_ms": TARGET_ADDED_P99_MS, "measured_ms": p99,
                      "pass": all(v <= TARGET_ADDED_P99_MS for v in p99.values())},
        "open_primary_added_wait_median": {
            "limit_ms": TARGET_OPEN_PRIMARY_MEDIAN_MS, "measured_ms": wait,
            "pass": wait <= TARGET_OPEN_PRIMARY_MEDIAN_MS},
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every scenario and return the report."""
    started = time.monotonic()
    rng = random.Random(args.seed)
    metrics = Metrics()
    with ModelSandbox() as sandbox:
        overhead: dict[str, Any] = {}
        for provider in ("anthropic", "openai"):
            console.print(f"[bold]overhead[/bold] {provider}: {args.calls} pairs")
            overhead[provider] = await _overhead(
                sandbox, metrics, provider, calls=args.calls, warmup=args.warmup, rng=rng)
        console.print(f"[bold]open primary[/bold]: {args.calls} pairs")
        open_primary = await _open_primary(
            sandbox, metrics, calls=args.calls, warmup=args.warmup, rng=rng,
            budget_s=args.open_primary_budget_s)
        report: dict[str, Any] = {
            "benchmark": "gateway_overhead",
            "environment": _environment(args),
            "overhead": overhead,
            "open_primary": open_primary,
            "targets": _targets(overhead, open_primary),
        }
        if args.profile:
            console.print(f"[bold]profile[/bold]: {args.profile} gateway calls per provider")
            report["profile"] = await _profile(sandbox, metrics, args.profile)
    report["elapsed_s"] = round(time.monotonic() - started, 2)
    return report


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print its JSON report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gateway_overhead",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=1000,
                        help="measured calls per path (default 1000, at least 500 advised)")
    parser.add_argument("--warmup", type=int, default=50, help="warm-up calls per path")
    parser.add_argument("--seed", type=int, default=1, help="seed of the pair order")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--open-primary-budget-s", type=float, default=40.0,
                        help="stop the open-primary scenario after this long (it waits "
                             "per call if an open breaker is retried)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also cProfile N gateway calls per provider and report the "
                             "costliest functions (µs per call)")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.warmup < 0:
        parser.error("--calls must be ≥ 1 and --warmup ≥ 0")
    configure_logging(level="ERROR")
    # the SDK warns about the model name on every call; the warning is noise here
    warnings.filterwarnings("ignore", message=r"The model .* is deprecated",
                            category=DeprecationWarning)
    report = asyncio.run(run(args))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
