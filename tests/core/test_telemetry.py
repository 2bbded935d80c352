"""JSON logs with ids, secrets kept out of logs and metrics."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from core.telemetry import configure_logging, get_logger, log_context, scrub, scrub_text
from sandbox.models import ModelSandbox, Status
from tests.core.conftest import KEY, OK, GatewayFactory, Verdict, request

SECRETS = [
    "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv",
    "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx",
    "rk_live_51HxYzAbCdEfGh",
    "ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123",
    "AKIAIOSFODNN7EXAMPLE",
    "lin_api_AbCdEfGhIjKlMnOpQr",
]


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(level="INFO", json=True, stream=stream)
    yield stream
    configure_logging(level="WARNING", json=True)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize("secret", SECRETS)
def test_scrub_text_removes_credentials(secret: str) -> None:
    cleaned = scrub_text(f"customer pasted {secret} in the ticket")
    assert secret not in cleaned
    assert "[REDACTED]" in cleaned


def test_scrub_handles_urls_bearer_secretstr_and_secret_keys() -> None:
    data = {
        "url": "postgresql://sleuth:hunter2@db:5432/sleuth",
        "header": "Authorization: Bearer abcdefghijklmnop.qrstu",
        "api_key": "plain-looking-value",
        "settings": {"password": "x", "nested": [SecretStr("s3cret")]},
        "input_tokens": 12,
        "ticket_id": "48213",
    }
    cleaned = scrub(data)
    text = json.dumps(cleaned)
    for secret in ("hunter2", "abcdefghijklmnop", "plain-looking-value", "s3cret"):
        assert secret not in text
    assert cleaned["input_tokens"] == 12
    assert cleaned["ticket_id"] == "48213"


def test_logs_are_json_and_carry_ids(log_stream: io.StringIO) -> None:
    log = get_logger("sleuth.test")
    with log_context(request_id="req-1", investigation_id="inv-9"):
        log.info("step_done", step="gather")
    log.info("outside")
    first, second = lines(log_stream)
    assert first["event"] == "step_done"
    assert (first["request_id"], first["investigation_id"]) == ("req-1", "inv-9")
    assert first["level"] == "info" and "timestamp" in first
    assert "request_id" not in second


def test_stdlib_loggers_are_json_and_scrubbed(log_stream: io.StringIO) -> None:
    logging.getLogger("some.library").warning("connecting with %s", SECRETS[0])
    (entry,) = lines(log_stream)
    assert entry["logger"] == "some.library"
    assert SECRETS[0] not in json.dumps(entry)


async def test_gateway_logs_and_metrics_never_hold_the_api_key(
    sandbox: ModelSandbox, make_gateway: GatewayFactory, log_stream: io.StringIO
) -> None:
    sandbox.set_default("anthropic", Status(401, message=f"invalid x-api-key {KEY}"))
    sandbox.set_default("openai", OK)
    gateway = make_gateway()
    with log_context(investigation_id="inv-42"):
        await gateway.generate(request(), Verdict)
    text = log_stream.getvalue()
    assert KEY not in text
    calls = [e for e in lines(log_stream) if e["event"] == "model_call"]
    assert [c["tier"] for c in calls] == ["anthropic", "openai"]
    assert all(c["investigation_id"] == "inv-42" for c in calls)
    assert KEY.encode() not in gateway.metrics.render()


def test_metrics_expose_the_documented_families(metrics) -> None:  # type: ignore[no-untyped-def]
    text = metrics.render().decode()
    for family in ("sleuth_model_call_seconds", "sleuth_model_calls", "sleuth_model_tokens",
                   "sleuth_model_cost_usd", "sleuth_errors", "sleuth_breaker_state"):
        assert f"# TYPE {family}" in text
