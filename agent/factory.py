"""Assemble an investigator: connectors, the gateway with the playbooks' rule tier, the store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from agent.checkpoint import open_checkpointer
from agent.context import AgentContext, Runnable
from agent.runner import Investigator
from connectors.registry import build_connectors
from connectors.settings import ConnectorSettings
from core.domain import SourceName
from core.llm import ModelGateway, build_gateway
from core.resilience import BreakerStore
from core.settings import Settings
from core.telemetry import Metrics
from playbooks.rules import PlaybookRuleEngine
from playbooks.store import DEFAULT_ROOT, PlaybookStore


def build_model_gateway(settings: Settings, metrics: Metrics,
                        breaker_store: BreakerStore | None = None) -> ModelGateway:
    """Return the gateway whose rules tier is the playbooks' rule engine."""
    return build_gateway(settings, metrics=metrics, rule_engine=PlaybookRuleEngine(),
                         breaker_store=breaker_store)


def checkpoint_target(settings: Settings) -> str:
    """Return where checkpoints go: the PostgreSQL database, or a SQLite file in data_dir."""
    url = settings.database_url.get_secret_value()
    if url.startswith(("postgresql://", "postgres://")):
        return url
    return str(settings.data_dir / "checkpoints.sqlite")


@asynccontextmanager
async def investigator(
    settings: Settings,
    connector_settings: ConnectorSettings | None = None,
    *,
    connectors: Mapping[SourceName, Runnable] | None = None,
    metrics: Metrics | None = None,
    gateway: ModelGateway | None = None,
    pins: dict[str, str] | None = None,
    checkpoints: str | None = None,
    breaker_store: BreakerStore | None = None,
) -> AsyncIterator[Investigator]:
    """Yield a ready investigator; close its connectors and gateway afterwards."""
    metrics = metrics or Metrics()
    owned_connectors = connectors is None
    if connectors is None:
        if connector_settings is None:
            raise ValueError("give connector settings or built connectors")
        built: Mapping[SourceName, Runnable] = build_connectors(
            connector_settings, resilience=settings.resilience, metrics=metrics,
            breaker_store=breaker_store)
        connectors = built
    owned_gateway = gateway is None
    gateway = gateway or build_model_gateway(settings, metrics, breaker_store)
    store = PlaybookStore(settings.agent.playbooks_dir or DEFAULT_ROOT)
    context = AgentContext(connectors=connectors, gateway=gateway, store=store,
                           settings=settings.agent, pins=dict(pins or {}))
    try:
        async with open_checkpointer(checkpoints or checkpoint_target(settings)) as saver:
            yield Investigator(context, saver)
    finally:
        if owned_gateway:
            await gateway.aclose()
        if owned_connectors:
            for connector in connectors.values():
                await connector.aclose()
