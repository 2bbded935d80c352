"""Shared fixtures: local services that are used when reachable and required under CI=true."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import structlog

from core.telemetry import Metrics
from sandbox.models import ModelSandbox

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    """Say whether a TCP server accepts connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a service is down on a developer machine; fail under CI=true."""
    if reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message}, and CI=true requires it", pytrace=False)
    pytest.skip(f"{message} (start it to run this test; CI requires it)")


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Undo a test's logging set-up (a command under test may raise the level to ERROR)."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def redis_url() -> str:
    """Return the URL of the local Redis server (skip or fail when it is down)."""
    host = os.environ.get("SLEUTH_TEST_REDIS_HOST", "127.0.0.1")
    port = int(os.environ.get("SLEUTH_TEST_REDIS_PORT", "6379"))
    require_service("Redis", host, port)
    return f"redis://{host}:{port}/15"


@pytest.fixture
def postgres_url() -> str:
    """Return the URL of the local PostgreSQL database `test` (skip or fail when it is down)."""
    host = os.environ.get("SLEUTH_TEST_POSTGRES_HOST", "127.0.0.1")
    port = int(os.environ.get("SLEUTH_TEST_POSTGRES_PORT", "5432"))
    require_service("PostgreSQL", host, port)
    user = os.environ.get("SLEUTH_TEST_POSTGRES_USER", "postgres")
    return f"postgresql://{user}@{host}:{port}/test"


@contextmanager
def postgres_schema(postgres_url: str, prefix: str) -> Iterator[str]:
    """Yield a URL whose search_path is a fresh schema named after `prefix`; drop it after."""
    from sqlalchemy import text

    from governance.db import make_engine

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = make_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def metrics() -> Metrics:
    """Return metrics on a fresh registry."""
    return Metrics()


@pytest.fixture(scope="session")
def model_sandbox() -> Iterator[ModelSandbox]:
    """Run one loopback model server for the whole session."""
    with ModelSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(model_sandbox: ModelSandbox) -> Iterator[ModelSandbox]:
    """Return the model server with empty scripts, reset after the test."""
    model_sandbox.reset()
    yield model_sandbox
    model_sandbox.reset()
