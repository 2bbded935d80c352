"""Fixtures of the service tests: settings on a temporary SQLite file, a context, a client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import Settings, load_settings
from service.api.app import create_app
from service.context import ServiceContext, build_context

CASES = Path(__file__).resolve().parents[2] / "evals" / "cases"
WEBHOOK_SECRETS = {"zendesk_secret": "zd-test-signing-secret-0123456789",
                   "intercom_secret": "ic-test-client-secret-0123456789",
                   "generic_secret": "gn-test-hmac-secret-0123456789"}


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Return a factory of settings on a SQLite file in tmp_path, webhook secrets set."""

    def make(**overrides: Any) -> Settings:
        service = {**WEBHOOK_SECRETS, "sandbox_cases": str(CASES),
                   **overrides.pop("service", {})}
        return load_settings(env_file=None, data_dir=tmp_path, service=service, **overrides)

    return make


@pytest.fixture
def service_settings(make_settings: Callable[..., Settings]) -> Settings:
    """Return default service settings for a test."""
    return make_settings()


@pytest.fixture
async def service_ctx(service_settings: Settings) -> AsyncIterator[ServiceContext]:
    """Return a service context on a fresh SQLite database."""
    ctx = build_context(service_settings)
    await ctx.queue.setup()
    yield ctx
    await ctx.aclose()


@pytest.fixture
async def client(service_ctx: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    """Return an HTTP client on the app, in process (no workers run)."""
    app = create_app(service_ctx)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sleuth.test") as c:
        yield c
