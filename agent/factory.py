"""Assemble an investigator: connectors, the gateway with the playbooks' rule tier, the store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine

from agent.checkpoint import open_checkpointer
from agent.context import AgentContext, GovernanceContext, Runnable
from agent.runner import Investigator
from connectors.registry import build_connectors
from connectors.settings import ConnectorSettings
from core.domain import SourceName
from core.llm import ModelGateway, build_gateway
from core.resilience import BreakerStore
from core.resilience.factory import breaker_store_from_settings
from core.settings import Settings
from core.telemetry import Metrics
from governance.approvals import ApprovalService
from governance.audit import AuditLog
from governance.db import create_all, make_engine
from governance.effectors.base import EffectorSet
from governance.redaction import Redactor
from governance.redaction.vault import SqlVault
from governance.taxonomy import DEFAULT_ROOT as TAXONOMY_ROOT
from governance.taxonomy import load_active
from playbooks.rules import PlaybookRuleEngine
from playbooks.store import DEFAULT_ROOT, PlaybookStore


def build_model_gateway(settings: Settings, metrics: Metrics,
                        breaker_store: BreakerStore | None = None) -> ModelGateway:
    """Return the gateway whose rules tier is the playbooks' rule engine."""
    return build_gateway(settings, metrics=metrics, rule_engine=PlaybookRuleEngine(),
                         breaker_store=breaker_store)


EffectorsSource = EffectorSet | Callable[[Engine], EffectorSet] | None


def build_governance(settings: Settings, *, effectors: EffectorsSource = None,
                     redact: Callable[[Any], Any] | None = None) -> GovernanceContext:
    """Return the taxonomy, approvals, audit log and effectors over the configured database."""
    url = settings.database_url.get_secret_value()
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    create_all(engine)
    taxonomy = load_active(settings.governance.taxonomy_dir or TAXONOMY_ROOT)
    return GovernanceContext(
        taxonomy=taxonomy,
        approvals=ApprovalService(engine, taxonomy, expiry=timedelta(
            hours=settings.governance.approval_expiry_hours)),
        audit=AuditLog(engine, scrub=redact),
        effectors=effectors(engine) if callable(effectors) else effectors,
        redactor=Redactor(SqlVault(engine)),
    )


BLOCKING_THREADS = 64


def _enough_threads() -> None:
    """Give blocking client calls enough threads (the stock pool has cpu+4, 6 here)."""
    loop = asyncio.get_running_loop()
    # connectors run sync SDKs (PyGithub, docs, clickhouse-connect) in threads; with 6,
    # a few slow calls starve every other connector of the same process
    if getattr(loop, "_sleuth_executor", None) is None:
        executor = ThreadPoolExecutor(max_workers=BLOCKING_THREADS,
                                      thread_name_prefix="sleuth-io")
        loop.set_default_executor(executor)
        loop._sleuth_executor = executor  # type: ignore[attr-defined]


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
    governance: GovernanceContext | Literal["settings"] | None = "settings",
    effectors: EffectorsSource = None,
) -> AsyncIterator[Investigator]:
    """Yield a ready investigator; close its connectors and gateway afterwards."""
    metrics = metrics or Metrics()
    _enough_threads()
    # one store for the connectors' and the models' breakers: Redis when several workers share them
    breaker_store = breaker_store or breaker_store_from_settings(settings)
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
    if governance == "settings":
        governance = build_governance(settings, effectors=effectors)
    context = AgentContext(connectors=connectors, gateway=gateway, store=store,
                           settings=settings.agent, pins=dict(pins or {}),
                           governance=governance)
    if governance is not None and governance.redactor is not None:
        # nothing sensitive reaches a model, a log or the audit log
        context.redact = governance.redactor.redact
        context.redact_value = governance.redactor.redact_value
    try:
        async with open_checkpointer(checkpoints or checkpoint_target(settings)) as saver:
            yield Investigator(context, saver)
    finally:
        if owned_gateway:
            await gateway.aclose()
        if owned_connectors:
            for connector in connectors.values():
                await connector.aclose()
