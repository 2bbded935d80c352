"""Liveness, readiness (each dependency named when down) and Prometheus metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.factory import checkpoint_target as agent_checkpoint_target
from core.settings import Settings
from governance.db import make_engine
from service.api import health
from service.context import ServiceContext
from service.queue.base import QueueUnavailableError
from tests.service.api_support import api_client, ticket


async def test_healthz_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    response = await client.get("/readyz")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "ready"
    assert set(body["checks"]) == {"database", "queue", "checkpointer"}
    assert all(c["ok"] for c in body["checks"].values())


async def test_database_down_is_503_naming_it(service_ctx: ServiceContext,
                                              client: httpx.AsyncClient) -> None:
    good = service_ctx.engine
    service_ctx.engine = make_engine("postgresql://sleuth:hunter2@127.0.0.1:1/none")
    try:
        response = await client.get("/readyz")
    finally:
        service_ctx.engine.dispose()
        service_ctx.engine = good
    body = response.json()
    assert response.status_code == 503 and body["status"] == "not_ready"
    assert body["checks"]["database"]["ok"] is False
    assert "OperationalError" in body["checks"]["database"]["error"]
    assert "hunter2" not in response.text
    assert body["checks"]["queue"]["ok"] is True


async def test_queue_down_and_slow_checks_are_named(service_ctx: ServiceContext,
                                                    client: httpx.AsyncClient,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    async def down() -> None:
        raise QueueUnavailableError("broker gone")

    monkeypatch.setattr(service_ctx.queue, "check", down)
    body = (await client.get("/readyz")).json()
    assert body["checks"]["queue"] == {"ok": False, "error": "QueueUnavailableError: broker gone",
                                       "ms": body["checks"]["queue"]["ms"]}

    async def hang() -> None:
        await asyncio.sleep(30)

    monkeypatch.setattr(health, "CHECK_TIMEOUT_S", 0.2)
    monkeypatch.setattr(service_ctx.queue, "check", hang)
    async with asyncio.timeout(5):
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert "within" in response.json()["checks"]["queue"]["error"]


async def test_checkpoint_folder_unusable_is_503(make_settings: Callable[..., Settings],
                                                  tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    # the database stays in tmp_path; only the checkpoints' folder is unusable
    settings = make_settings().model_copy(update={"data_dir": blocker / "var"})
    async with api_client(settings) as (_, client):
        response = await client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["checkpointer"]["ok"] is False
    assert "not a writable folder" in body["checks"]["checkpointer"]["error"]
    assert body["checks"]["database"]["ok"] is True


def test_sqlite_writable_accepts_a_folder_still_to_create(tmp_path: Path) -> None:
    health._sqlite_writable(tmp_path / "a" / "b" / "checkpoints.sqlite")


def test_checkpoint_rule_matches_the_agent(make_settings: Callable[..., Settings]) -> None:
    for url in (None, "postgresql://u@127.0.0.1:5432/db", "postgres://u@h/db"):
        settings = make_settings(**({"database_url": url} if url else {}))
        assert health.checkpoint_target(settings) == agent_checkpoint_target(settings)


async def test_metrics_has_fresh_gauges(service_ctx: ServiceContext,
                                        client: httpx.AsyncClient) -> None:
    await service_ctx.accept("zendesk", "e1", ticket("T-1"))
    await service_ctx.accept("zendesk", "e1", ticket("T-2"))
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(response.text)
               for s in family.samples}
    assert samples[("sleuth_queue_depth", ())] == 2
    assert samples[("sleuth_investigations", (("status", "queued"),))] == 2
    assert samples[("sleuth_investigations", (("status", "completed"),))] == 0
    assert samples[("sleuth_approvals_pending", ())] == 0
    # a second scrape reuses the gauges (no duplicate registration)
    assert (await client.get("/metrics")).status_code == 200
