"""Restart the API and the database connections under load: no accepted webhook is lost.

`sleuth serve` runs as a subprocess (embedded workers, sandbox worlds). A client that
behaves like a ticket system sends signed webhooks at a steady rate and retries the same
event after connection errors, 5xx and 429. Meanwhile the server is stopped with SIGTERM
and started again, then SIGKILLed and started again (SQLite), or all its PostgreSQL
connections are terminated by the database, three times (PostgreSQL variant).

Afterwards every event got a 202, every event has exactly one investigation (with the id
its 202 named), and every investigation reaches a final state. Most events carry tickets
of no sandbox case: their investigations fail at once with `sandbox_world_not_found`,
which keeps the test short while their jobs still go through the queue and the workers;
one event in thirty is a demo ticket that is really investigated (and may be interrupted:
SIGTERM gives running investigations 3 s, then leaves them to their lease).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from core.domain import Requester, Ticket
from governance.db import make_engine
from sandbox.cases import load_case
from sandbox.models import closed_port as free_port
from service.demo_client import Accepted, ServiceClient, WebhookSecrets, signed_delivery
from service.webhooks.send import SignedRequest
from tests.service.conftest import CASES, WEBHOOK_SECRETS

RATE = 40.0  # webhooks per second
DURATION_S = 6.0
REAL_EVERY = 30
REAL_CASES = ("pub-06-card-declined", "pub-09-key-rotated")
FINAL_WAIT_S = 60.0
GRACE_S = 3  # SIGTERM: running investigations get this long, then their lease runs out
SOURCES = ("zendesk", "intercom", "email")  # email tickets come by the generic webhook
SLEUTH = Path(sys.executable).parent / "sleuth"
SECRETS = WebhookSecrets(WEBHOOK_SECRETS["zendesk_secret"], WEBHOOK_SECRETS["intercom_secret"],
                         WEBHOOK_SECRETS["generic_secret"])



class Serve:
    """One `sleuth serve` process at a time on a fixed port; restartable."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("SLEUTH_")},
                    **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self.generation = 0

    def start(self) -> None:
        self.generation += 1
        log = (self.workdir / f"serve-{self.generation}.log").open("wb")
        self.proc = subprocess.Popen(  # noqa: S603 - our own entry point
            [str(SLEUTH), "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--grace", str(GRACE_S)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()

    async def ready(self, timeout_s: float = 45.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.url, timeout=1.0) as client:
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.poll() is None, "serve exited"
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"sleuth serve not up within {timeout_s} s")

    async def stop(self, sig: signal.Signals) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return await asyncio.to_thread(self.proc.wait, 40)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def tail(self, chars: int = 3000) -> str:
        logs = sorted(self.workdir.glob("serve-*.log"))
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}" for p in logs)


@dataclass
class Event:
    request: SignedRequest
    event_id: str
    real: bool
    accepted: list[Accepted] = field(default_factory=list)
    failure: str | None = None


def make_events(count: int, run: str) -> list[Event]:
    real = [load_case(CASES / name).case.ticket for name in REAL_CASES]
    events = []
    for i in range(count):
        if i % REAL_EVERY == 0:
            ticket = real[(i // REAL_EVERY) % len(real)]
        else:  # a ticket of no sandbox case: investigated and failed at once
            ticket = Ticket(id=f"load-{run}-{i}", source=SOURCES[i % len(SOURCES)],
                            created_at=datetime.now(UTC), subject="Requests fail",
                            body="All our requests fail since this morning.",
                            requester=Requester(name="Load", email="load@example.com"))
        event_id = f"ev-{run}-{i}"
        events.append(Event(signed_delivery(ticket, SECRETS, event_id=event_id), event_id,
                            i % REAL_EVERY == 0))
    return events


async def send_load(url: str, events: list[Event]) -> None:
    """Send each event at its due time; each one is retried until it gets a 202."""
    async with ServiceClient(url, http=httpx.AsyncClient(
            base_url=url, timeout=httpx.Timeout(5.0, connect=1.0))) as client:

        async def one(event: Event) -> None:
            try:
                event.accepted.append(await client.deliver(
                    event.request, give_up_after_s=90, retry_delay_s=0.3, max_wait_s=1.0))
            except Exception as exc:  # reported by the assertions, with the event
                event.failure = f"{type(exc).__name__}: {exc}"

        loop = asyncio.get_running_loop()
        started = loop.time()
        tasks = []
        for i, event in enumerate(events):
            await asyncio.sleep(max(0.0, started + i / RATE - loop.time()))
            tasks.append(asyncio.create_task(one(event)))
        await asyncio.gather(*tasks)
        await client.http.aclose()


def rows(engine: Engine) -> list[tuple[str, str, str, str, str | None, int]]:
    with engine.connect() as conn:
        return [(r.id, r.source, r.event_id, r.status, r.error, r.attempts) for r in conn.execute(
            text("SELECT id, source, event_id, status, error, attempts FROM investigations"))]


async def wait_final(engine: Engine, expected: int) -> list[tuple[str, str, str, str,
                                                                   str | None, int]]:
    deadline = time.monotonic() + FINAL_WAIT_S
    while True:
        found = await asyncio.to_thread(rows, engine)
        open_ = [r for r in found if r[3] in ("queued", "running")]
        if len(found) >= expected and not open_:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(open_)} investigation(s) not final after "
                                 f"{FINAL_WAIT_S} s: {open_[:5]}")
        await asyncio.sleep(0.5)


def check(events: list[Event], found: list[tuple[str, str, str, str, str | None, int]],
          engine: Engine) -> None:
    failed = [(e.request.path, e.failure) for e in events if e.failure]
    assert not failed, f"{len(failed)} event(s) never got a 202: {failed[:3]}"
    by_event: dict[tuple[str, str], list[tuple[str, str, str, str, str | None, int]]] = {}
    for row in found:
        by_event.setdefault((row[1], row[2]), []).append(row)
    assert len(found) == len(events), "an investigation without an event, or a lost one"
    for event in events:
        (accepted,) = event.accepted
        source = event.request.path.rsplit("/", 1)[1]
        matches = by_event.get((source, event.event_id), [])
        assert len(matches) == 1, f"{event.request.path}: {len(matches)} investigations"
        row = matches[0]
        assert row[0] == accepted.investigation_id
        if event.real:
            assert row[3] in ("waiting_approval", "completed"), row
        else:
            assert row[3] == "failed" and "sandbox_world_not_found" in (row[4] or ""), row
    with engine.connect() as conn:
        left = conn.execute(text("SELECT status, count(*) FROM jobs GROUP BY status")).all()
    assert not [r for r in left if r[0] == "dead"], left


# -- the tests --------------------------------------------------------------------------


@pytest.fixture
def cases_dir(tmp_path: Path) -> Path:
    """Return a folder with just the cases the load uses (the workers index it at start)."""
    folder = tmp_path / "cases"
    folder.mkdir()
    for name in REAL_CASES:
        (folder / name).symlink_to(CASES / name, target_is_directory=True)
    return folder


def serve_env(data_dir: Path, cases: Path, **extra: str) -> dict[str, str]:
    return {"SLEUTH_DATA_DIR": str(data_dir), "SLEUTH_SERVICE__SANDBOX_CASES": str(cases),
            "SLEUTH_SERVICE__SANDBOX_LATENCY_S": "0", "SLEUTH_QUEUE__LEASE_S": "3",
            "SLEUTH_TELEMETRY__LOG_LEVEL": "WARNING",
            **{f"SLEUTH_SERVICE__{k.upper()}": v for k, v in WEBHOOK_SECRETS.items()}, **extra}


@pytest.fixture
def postgres_schema(postgres_url: str) -> Iterator[tuple[str, str]]:
    """Yield (service URL, application name) on a schema of this test's own."""
    schema = f"restart_{uuid.uuid4().hex[:12]}"
    admin = make_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    name = f"sleuth-{schema}"
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}&application_name={name}", name
    finally:
        with admin.begin() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE application_name = :n"), {"n": name})
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


async def run_under_load(serve: Serve, engine: Engine,
                         chaos: Callable[[], Awaitable[None]]) -> None:
    """Start the server, send the load while `chaos` runs, then check nothing was lost."""
    events = make_events(int(RATE * DURATION_S), uuid.uuid4().hex[:6])
    try:
        serve.start()
        await serve.ready()
        load = asyncio.create_task(send_load(serve.url, events))
        await chaos()
        await asyncio.wait_for(load, 120)
        found = await wait_final(engine, len(events))
        check(events, found, engine)
    except BaseException:
        print(serve.tail(), file=sys.stderr)
        raise
    finally:
        serve.kill()


async def test_sigterm_and_sigkill_restarts_lose_no_webhook(tmp_path: Path,
                                                           cases_dir: Path) -> None:
    serve = Serve(tmp_path, serve_env(tmp_path, cases_dir))
    engine = make_engine(f"sqlite:///{tmp_path / 'sleuth.db'}")

    async def chaos() -> None:
        await asyncio.sleep(1.5)
        assert await serve.stop(signal.SIGTERM) == 0  # graceful: it exits cleanly
        serve.start()
        await serve.ready()
        await asyncio.sleep(1.5)
        await serve.stop(signal.SIGKILL)
        serve.start()
        await serve.ready()

    try:
        await run_under_load(serve, engine, chaos)
    finally:
        engine.dispose()


@pytest.mark.postgres
async def test_postgres_connections_terminated_under_load_lose_no_webhook(
        tmp_path: Path, cases_dir: Path, postgres_schema: tuple[str, str]) -> None:
    url, name = postgres_schema
    serve = Serve(tmp_path, serve_env(tmp_path, cases_dir, SLEUTH_DATABASE_URL=url))
    engine = make_engine(url)
    admin = make_engine(url.split("?", 1)[0])

    def terminate() -> int:
        with admin.begin() as conn:
            return len(conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :n AND pid <> pg_backend_pid()"), {"n": name}).all())

    async def chaos() -> None:
        for _ in range(3):  # every connection of the service: its pools, the checkpointer's
            await asyncio.sleep(1.5)
            assert await asyncio.to_thread(terminate) > 0

    try:
        await run_under_load(serve, engine, chaos)
    finally:
        engine.dispose()
        admin.dispose()
