"""Bring a case's world up for the real clients: chdb tables and loopback API servers."""

from __future__ import annotations

import re
import uuid
from types import TracebackType
from typing import Any

import clickhouse_connect
from sqlalchemy import Engine

from connectors.settings import ConnectorSettings
from core.resilience import ResiliencePolicy
from core.settings import ResilienceSettings
from governance.effectors import Ledger, build_effectors, create_ledger_table
from governance.effectors.base import EffectorSet
from sandbox.apis import clickhouse as clickhouse_api
from sandbox.apis import effectors as effectors_api
from sandbox.apis import github as github_api
from sandbox.apis import linear as linear_api
from sandbox.apis import statuspage as statuspage_api
from sandbox.apis import stripe as stripe_api
from sandbox.cases import LoadedCase, World
from sandbox.http import LoopbackServer

HTTP_MOUNTS = ("stripe", "github", "linear", "statuspage")


class SandboxWorld:
    """A running sandbox of one case: use as a context manager.

    `server` hosts the Stripe, GitHub, Linear and Statuspage APIs (mounts named
    after them, with fault and latency injection); the request log is loaded
    into an in-process ClickHouse database of its own; docs are read in place.
    """

    def __init__(self, case: LoadedCase, *, latency_s: float = 0.0) -> None:
        self.case = case
        self.world: World = case.world
        self.latency_s = latency_s
        self.server = LoopbackServer()
        self.server.mount("stripe", stripe_api.routes(self.world))
        self.server.mount("github", github_api.routes(self.world))
        self.server.mount("linear", linear_api.routes(self.world),
                          methods=frozenset({"POST"}))
        self.server.mount("statuspage", statuspage_api.routes(self.world))
        # the writable side: where approved actions land, recorded for inspection
        self.effects = effectors_api.EffectorSandbox().seed(self.world, case.case.ticket)
        self.effects.mount(self.server)
        safe = re.sub(r"[^a-z0-9_]", "_", case.id.lower())[:40]
        self.database = f"case_{safe}_{uuid.uuid4().hex[:8]}"
        self._ch: Any = None
        self.rows_loaded = 0

    def start(self) -> SandboxWorld:
        """Start the API server and load the request log."""
        self.server.start()
        for name in HTTP_MOUNTS:
            self.server.set_latency(name, self.latency_s)
        self._ch = clickhouse_connect.get_client(interface="chdb")
        self.rows_loaded = clickhouse_api.load_world(self._ch, self.world,
                                                     database=self.database)
        return self

    def stop(self) -> None:
        """Stop the server and drop the case's database."""
        self.server.stop()
        if self._ch is not None:
            clickhouse_api.drop_world(self._ch, self.database)
            self._ch = None

    def __enter__(self) -> SandboxWorld:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def connector_settings(self) -> ConnectorSettings:
        """Return connector settings that point every connector at this sandbox."""
        url = self.server.url
        docs_root = self.world.docs_root
        return ConnectorSettings(
            _env_file=None,
            clickhouse=clickhouse_api.sandbox_config(self.database),
            stripe=stripe_api.sandbox_config(url("stripe"), self.world),
            github=github_api.sandbox_config(url("github"), self.world),
            linear=linear_api.sandbox_config(url("linear"), self.world),
            statuspage=statuspage_api.sandbox_config(url("statuspage"), self.world),
            docs={"root": docs_root} if docs_root is not None else {"enabled": False},
        )

    def effector_set(self, engine: Engine, resilience: ResilienceSettings) -> EffectorSet:
        """Return effectors that write to this sandbox, idempotent through a ledger on `engine`."""
        create_ledger_table(engine)
        return build_effectors(
            Ledger(engine), lambda name: ResiliencePolicy(name, resilience),
            zendesk=effectors_api.zendesk_config(self.server),
            stripe=effectors_api.stripe_write_config(self.server),
            linear=effectors_api.linear_write_config(self.server),
            paging=effectors_api.paging_config(self.server),
        )
