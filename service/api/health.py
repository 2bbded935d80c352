"""Routes: liveness, readiness and Prometheus metrics, outside /v1 and without a token.

They take no token because orchestrators and Prometheus call them without one, and they
disclose nothing about tickets: readiness names its checks and their errors (scrubbed of
credentials), and metric labels come from fixed sets (statuses, tiers, error codes),
never from request data. Restrict /metrics by network (or a scrape-only ingress) when
the counts themselves are sensitive.
"""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from sqlalchemy import text

from core.settings import Settings
from core.telemetry import get_logger, scrub_text
from governance.approvals_store import ApprovalStatus
from service.api.deps import get_ctx
from service.api.schemas import Alive, CheckResult, Readiness
from service.context import ServiceContext
from service.investigations import Status

router = APIRouter(tags=["health"])
Ctx = Annotated[ServiceContext, Depends(get_ctx)]
log = get_logger("sleuth.api.health")
CHECK_TIMEOUT_S = 2.0


@router.get("/healthz", response_model=Alive)
async def healthz() -> Alive:
    """Say the process is up (it answers); checks nothing else."""
    return Alive()


# -- readiness ------------------------------------------------------------------------


def _database(ctx: ServiceContext) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        def select_one() -> None:
            with ctx.engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        await asyncio.to_thread(select_one)

    return check


def _queue(ctx: ServiceContext) -> Callable[[], Awaitable[None]]:
    return ctx.queue.check


_POSTGRES = ("postgresql://", "postgres://")


def checkpoint_target(settings: Settings) -> str:
    """Return where the agent keeps checkpoints (the rule of agent.factory.checkpoint_target).

    Repeated rather than imported: importing the agent stack takes seconds, and readiness
    must answer at once; a test keeps the two in step.
    """
    url = settings.database_url.get_secret_value()
    return url if url.startswith(_POSTGRES) else str(settings.data_dir / "checkpoints.sqlite")


def _checkpointer(ctx: ServiceContext) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        target = checkpoint_target(ctx.settings)
        if target.startswith(_POSTGRES):
            import psycopg

            async with await psycopg.AsyncConnection.connect(
                    target, connect_timeout=max(1, int(CHECK_TIMEOUT_S))) as conn:
                await conn.execute("SELECT 1")
            return
        await asyncio.to_thread(_sqlite_writable, Path(target.removeprefix("sqlite:///")))

    return check


def _sqlite_writable(path: Path) -> None:
    """Raise unless the checkpoint file can be written (or created, with its folders)."""
    if path.exists():
        if not os.access(path, os.W_OK):
            raise PermissionError(f"{path} is not writable")
        return
    folder = path.parent
    while not folder.exists():  # the checkpointer creates missing folders
        if folder == folder.parent:
            break
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{folder} is not a writable folder for {path.name}")


async def _run(check: Callable[[], Awaitable[None]]) -> CheckResult:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except TimeoutError:
        error: str | None = f"no answer within {CHECK_TIMEOUT_S:g}s"
    except Exception as exc:
        error = f"{type(exc).__name__}: {scrub_text(str(exc))}"[:300]
    else:
        error = None
    return CheckResult(ok=error is None, error=error,
                       ms=round((time.perf_counter() - started) * 1000, 1))


@router.get("/readyz", response_model=Readiness,
            responses={503: {"model": Readiness, "description": "a dependency is down"}})
async def readyz(ctx: Ctx) -> Response:
    """Say whether the database, the queue and the checkpointer answer (checked at once)."""
    checks = {"database": _database(ctx), "queue": _queue(ctx),
              "checkpointer": _checkpointer(ctx)}
    results = await asyncio.gather(*(_run(c) for c in checks.values()))
    by_name = dict(zip(checks, results, strict=True))
    ready = all(r.ok for r in results)
    if not ready:
        log.warning("not_ready", failed={k: v.error for k, v in by_name.items() if not v.ok})
    body = Readiness(status="ready" if ready else "not_ready", checks=by_name)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)


# -- metrics --------------------------------------------------------------------------


class _ServiceGauges:
    """Gauges the API sets when it is scraped (one set per registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.queue_depth = Gauge("sleuth_queue_depth", "Jobs waiting or running.",
                                 registry=registry)
        self.investigations = Gauge("sleuth_investigations", "Investigations by status.",
                                    ["status"], registry=registry)
        self.approvals_pending = Gauge("sleuth_approvals_pending",
                                       "Approval requests waiting for people.",
                                       registry=registry)


_GAUGES: weakref.WeakKeyDictionary[CollectorRegistry, _ServiceGauges] = \
    weakref.WeakKeyDictionary()


def _gauges(registry: CollectorRegistry) -> _ServiceGauges:
    found = _GAUGES.get(registry)
    if found is None:
        found = _GAUGES[registry] = _ServiceGauges(registry)
    return found


async def _refresh(ctx: ServiceContext, gauges: _ServiceGauges) -> None:
    """Set the gauges from the queue and the database; a failing source reads NaN."""
    try:
        gauges.queue_depth.set(await ctx.queue.depth())
    except Exception as exc:
        log.warning("metrics_queue_depth_failed", error=type(exc).__name__)
        gauges.queue_depth.set(float("nan"))
    try:
        counts = await asyncio.to_thread(ctx.store.counts)
        pending = await asyncio.to_thread(ctx.approvals.list, ApprovalStatus.PENDING.value)
    except Exception as exc:
        log.warning("metrics_counts_failed", error=type(exc).__name__)
        for status in Status:
            gauges.investigations.labels(status=status.value).set(float("nan"))
        gauges.approvals_pending.set(float("nan"))
        return
    for status in Status:
        gauges.investigations.labels(status=status.value).set(counts.get(status.value, 0))
    gauges.approvals_pending.set(len(pending))


@router.get("/metrics", response_class=Response,
            responses={200: {"description": "Prometheus text exposition",
                             "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}})
async def metrics(ctx: Ctx) -> Response:
    """Return every metric in Prometheus text format, with queue and status gauges fresh."""
    registry = ctx.metrics.registry
    await _refresh(ctx, _gauges(registry))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
