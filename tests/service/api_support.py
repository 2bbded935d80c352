"""Helpers of the API tests: a tokens file with every kind of caller, an app and a client."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from core.domain import Ticket
from core.settings import Settings
from service.api.app import create_app
from service.api.auth import write_tokens_file
from service.context import ServiceContext, build_context

# token -> (name, role, governance reviewer)
TOKENS: dict[str, tuple[str, str, str | None]] = {
    "tok-reader-0123456789": ("dashboards", "reader", None),
    "tok-ava-0123456789": ("ava-console", "reviewer", "ava"),  # support_agent
    "tok-bill-0123456789": ("bill-console", "reviewer", "bill"),  # billing_admin
    "tok-ghost-0123456789": ("ghost", "reviewer", "ghost"),  # no such reviewer
    "tok-ops-0123456789": ("ops", "admin", None),
    "tok-ada-0123456789": ("ada-admin", "admin", "ada"),  # admin
}
READER, AVA, BILL, GHOST, OPS, ADA = TOKENS


def auth(token: str) -> dict[str, str]:
    """Return the Authorization header of a token."""
    return {"Authorization": f"Bearer {token}"}


def write_test_tokens(path: Path) -> Path:
    """Write the tokens file of TOKENS."""
    entries = [{"name": name, "token": token, "role": role,
                **({"reviewer": reviewer} if reviewer else {})}
               for token, (name, role, reviewer) in TOKENS.items()]
    return write_tokens_file(path, entries)


def api_settings(make_settings: Callable[..., Settings], tmp_path: Path,
                 **service: Any) -> Settings:
    """Return settings with the test tokens file (and any service overrides)."""
    tokens = write_test_tokens(tmp_path / "tokens.yaml")
    return make_settings(service={"tokens_file": str(tokens), **service})


@asynccontextmanager
async def api_client(settings: Settings) -> AsyncIterator[tuple[ServiceContext, httpx.AsyncClient]]:
    """Yield a context on a fresh database and a client of the app over it."""
    ctx = build_context(settings)
    await ctx.queue.setup()
    try:
        transport = httpx.ASGITransport(app=create_app(ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://sleuth.test",
                                     timeout=30) as client:
            yield ctx, client
    finally:
        await ctx.aclose()


def ticket(ticket_id: str, *, source: str = "zendesk") -> Ticket:
    """Return a ticket with a body and requester the API must never show."""
    return Ticket.model_validate({
        "id": ticket_id, "source": source, "created_at": datetime(2026, 3, 1, tzinfo=UTC),
        "subject": "Card declined", "body": "My card 4242 keeps failing, call me on 555-0100",
        "requester": {"name": "Pat Doe", "email": "pat.doe@example.com"}})


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run the app in uvicorn on a free loopback port in a thread; yield its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
