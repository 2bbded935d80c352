"""Each dependency down in turn: the service says so, refuses what it cannot keep, loses nothing.

* the database unreachable: `/readyz` 503 naming it, webhooks 503 (nothing accepted);
* the queue unreachable (procrastinate on a closed port): `/readyz` 503 naming it,
  webhooks 503, nothing stored;
* a connector's system down: the investigation completes, the source listed as degraded;
* every model tier down: the investigation completes from the rules tier, and its record
  says which tiers failed;
* the database down at start, then up: the service creates its tables and carries on.

Closed ports are loopback ports nothing listens on. The service runs in-process
(`Server`, embedded workers on their own thread and loop).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.settings import Settings
from governance.db import make_engine
from sandbox.cases import load_case
from sandbox.http import Status
from sandbox.models import closed_port
from sandbox.world import SandboxWorld
from service.api.auth import generate_token, write_tokens_file
from service.demo_client import ServiceClient, WebhookSecrets, signed_delivery
from service.server import Server
from tests.service.conftest import CASES

TOKEN = generate_token()
TICKET = load_case(CASES / "pub-06-card-declined").case.ticket
FAST_RETRIES = {"retry": {"max_attempts": 2, "initial_backoff_s": 0.05, "max_backoff_s": 0.1,
                          "jitter_s": 0.0},
                "timeouts": {"connect_s": 1, "response_s": 5, "total_budget_s": 10}}



@pytest.fixture
def serve(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[
        Callable[..., Server]]:
    """Return a starter of in-process servers (stopped after the test) with a reader token."""
    tokens = write_tokens_file(tmp_path / "tokens.yaml",
                               [{"name": "tests", "role": "reader", "token": TOKEN}])
    started: list[Server] = []

    def start(**overrides: Any) -> Server:
        service = {"port": 0, "tokens_file": str(tokens), **overrides.pop("service", {})}
        server = Server(make_settings(service=service, **overrides), grace_s=5)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


async def investigate(server: Server, event_id: str) -> dict[str, Any]:
    """Deliver the pub-06 ticket and follow it over the API until it stops."""
    delivery = signed_delivery(TICKET, WebhookSecrets.of(server.settings), event_id=event_id)
    async with ServiceClient(server.url, token=TOKEN) as client:
        accepted = await client.deliver(delivery, give_up_after_s=5)
        return await client.follow(accepted.investigation_id, timeout_s=25)


async def post_webhook(server: Server) -> httpx.Response:
    delivery = signed_delivery(TICKET, WebhookSecrets.of(server.settings), event_id="down-1")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        return await http.post(delivery.path, content=delivery.body, headers=delivery.headers)


def readiness(server: Server) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{server.url}/readyz", timeout=10)
    checks: dict[str, Any] = response.json()["checks"]
    return response.status_code, checks


@pytest.mark.timeout(30)
async def test_database_unreachable_is_not_ready_and_refuses_webhooks(
        serve: Callable[..., Server]) -> None:
    server = serve(database_url=f"postgresql://postgres@127.0.0.1:{closed_port()}/test")
    status, checks = readiness(server)
    assert status == 503
    assert checks["database"]["ok"] is False
    assert "OperationalError" in checks["database"]["error"]
    response = await post_webhook(server)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "queue_unavailable"
    assert server.healthy()  # it keeps serving (and retrying) until the database answers


@pytest.mark.timeout(30)
async def test_queue_unreachable_is_not_ready_and_refuses_webhooks(
        serve: Callable[..., Server]) -> None:
    server = serve(queue={"backend": "procrastinate",
                          "url": f"postgresql://postgres@127.0.0.1:{closed_port()}/test"})
    assert not server.workers  # procrastinate: investigations run in `sleuth worker`
    status, checks = readiness(server)
    assert status == 503
    assert checks["queue"]["ok"] is False and checks["database"]["ok"] is True
    response = await post_webhook(server)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "queue_unavailable"
    assert server.ctx.store.list() == []  # nothing was accepted


class _StatuspageDown(SandboxWorld):
    """A sandbox world whose Statuspage answers 503 to everything."""

    def start(self) -> SandboxWorld:
        super().start()
        self.server.set_default_fault("statuspage", Status(503))
        return self


@pytest.mark.timeout(30)
async def test_a_connector_down_degrades_the_investigation(
        serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("service.worlds.SandboxWorld", _StatuspageDown)
    # the patch lives in this process: run the embedded workers on a thread of it
    server = serve(resilience=FAST_RETRIES, service={"embedded_workers_in": "thread"})
    found = await investigate(server, "connector-down")
    record = found["record"]
    assert found["status"] == "waiting_approval", found
    assert record["degraded_sources"] == ["statuspage"]
    failed = [c for c in record["calls"] if c["source"] == "statuspage"]
    assert failed and not any(c["ok"] for c in failed)
    # the other sources still carry the diagnosis
    assert found["root_cause"] == "billing.payment_failed"


@pytest.mark.timeout(30)
async def test_every_model_tier_down_falls_back_to_the_rules(
        serve: Callable[..., Server]) -> None:
    down = f"http://127.0.0.1:{closed_port()}"
    tiers = [{"name": "anthropic", "kind": "anthropic", "model": "claude-sonnet-4-6",
              "base_url": down, "api_key": "sk-ant-test-unreachable"},
             {"name": "openai", "kind": "openai", "model": "gpt-4.1",
              "base_url": f"{down}/v1", "api_key": "sk-test-unreachable"},
             {"name": "rules", "kind": "rules"}, {"name": "human", "kind": "human"}]
    server = serve(llm={"tiers": tiers}, resilience=FAST_RETRIES)
    found = await investigate(server, "models-down")
    record = found["record"]
    assert found["status"] == "waiting_approval", found
    assert found["tier"] == record["tier"] == "rules"
    tried = {t["tier"]: t["outcome"] for t in record["tiers_tried"]}
    assert tried["rules"] == "ok"
    for tier in ("anthropic", "openai"):
        assert tried[tier] not in ("ok",) and not tried[tier].startswith("skipped"), tried
    assert found["root_cause"] == "billing.payment_failed"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@pytest.mark.postgres
@pytest.mark.timeout(60)
async def test_the_service_recovers_when_the_database_comes_up(
        serve: Callable[..., Server], postgres_url: str) -> None:
    schema = f"deps_{uuid.uuid4().hex[:12]}"
    admin = make_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    port = closed_port()
    target = make_url(postgres_url)

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(target.host, target.port or 5432)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    proxy: asyncio.Server | None = None
    try:
        url = target.set(port=port).render_as_string(hide_password=False)
        server = serve(database_url=f"{url}?options=-csearch_path%3D{schema}")
        assert readiness(server)[0] == 503
        assert (await post_webhook(server)).status_code == 503
        # the database comes up (behind a loopback forwarder on the port it was given)
        proxy = await asyncio.start_server(forward, "127.0.0.1", port)
        deadline = time.monotonic() + 30
        while (await asyncio.to_thread(readiness, server))[0] != 200:
            assert time.monotonic() < deadline, readiness(server)
            await asyncio.sleep(0.5)
        found = await investigate(server, "after-recovery")
        assert found["status"] == "waiting_approval", found
        assert found["root_cause"] == "billing.payment_failed"
    finally:
        if proxy is not None:
            proxy.close()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
