"""Which systems a worker investigates against: the configured ones, or sandbox worlds.

Production workers hold one investigator over the configured connectors. The demo and
the tests run `SandboxWorlds`: each ticket is matched to the case it comes from (by
ticket id) and investigated against that case's world on loopback servers, started
the first time one of its tickets arrives and kept until the worker stops.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from contextlib import AsyncExitStack
from pathlib import Path

from agent.factory import investigator
from agent.runner import Investigator
from connectors.settings import load_connector_settings
from core.domain import Ticket
from core.errors import NotFoundError
from core.settings import Settings
from core.telemetry import Metrics, get_logger
from sandbox.cases import LoadedCase, discover, load_case
from sandbox.world import SandboxWorld

log = get_logger("sleuth.worlds")


class NoWorldError(NotFoundError):
    """No sandbox case has this ticket."""

    code = "sandbox_world_not_found"


class Worlds(ABC):
    """Hands out the investigator for a ticket."""

    @abstractmethod
    async def investigator(self, ticket: Ticket) -> Investigator:
        """Return a ready investigator for this ticket."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close connectors, gateways and sandbox servers."""


class ConfiguredWorld(Worlds):
    """The real systems, from connector settings (`SLEUTH_CONNECTOR_*`)."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._stack = AsyncExitStack()
        self._investigator: Investigator | None = None
        self._lock = asyncio.Lock()

    async def investigator(self, ticket: Ticket) -> Investigator:
        """Return the one shared investigator, opening it the first time."""
        async with self._lock:
            if self._investigator is None:
                self._investigator = await self._stack.enter_async_context(investigator(
                    self.settings, load_connector_settings(), metrics=self.metrics))
            return self._investigator

    async def aclose(self) -> None:
        """Close the investigator."""
        await self._stack.aclose()
        self._investigator = None


class SandboxWorlds(Worlds):
    """One sandbox world per case, matched to tickets by ticket id."""

    def __init__(self, settings: Settings, cases: Path, metrics: Metrics, *,
                 latency_s: float = 0.0) -> None:
        self.settings = settings
        self.metrics = metrics
        self.latency_s = latency_s
        self._folders: dict[str, Path] = {}
        for folder in discover(cases):
            ticket_id = load_case(folder).case.ticket.id
            self._folders.setdefault(ticket_id, folder)
        self._open: dict[Path, Investigator] = {}
        self._stack = AsyncExitStack()
        self._lock = asyncio.Lock()

    @property
    def ticket_ids(self) -> list[str]:
        """Return the ticket ids this sandbox can investigate."""
        return sorted(self._folders)

    def case_for(self, ticket_id: str) -> LoadedCase:
        """Return the case a ticket comes from."""
        folder = self._folders.get(ticket_id)
        if folder is None:
            raise NoWorldError(f"no sandbox case has ticket {ticket_id!r}", ticket_id=ticket_id)
        return load_case(folder)

    async def investigator(self, ticket: Ticket) -> Investigator:
        """Return the investigator over the ticket's case world, starting it if needed."""
        folder = self._folders.get(ticket.id)
        if folder is None:
            raise NoWorldError(f"no sandbox case has ticket {ticket.id!r}", ticket_id=ticket.id)
        async with self._lock:
            found = self._open.get(folder)
            if found is not None:
                return found
            loaded = load_case(folder)
            world = SandboxWorld(loaded, latency_s=self.latency_s)
            await asyncio.to_thread(world.start)
            self._stack.callback(world.stop)
            opened = await self._stack.enter_async_context(investigator(
                self.settings, world.connector_settings(), metrics=self.metrics,
                effectors=lambda engine: world.effector_set(engine, self.settings.resilience)))
            self._open[folder] = opened
            log.info("sandbox_world_started", case=loaded.id)
            return opened

    async def aclose(self) -> None:
        """Stop every world started."""
        await self._stack.aclose()
        self._open.clear()


def build_worlds(settings: Settings, metrics: Metrics) -> Worlds:
    """Return sandbox worlds when `service.sandbox_cases` is set, else the configured world."""
    cases = settings.service.sandbox_cases
    if cases is not None:
        return SandboxWorlds(settings, cases, metrics, latency_s=settings.service.sandbox_latency_s)
    return ConfiguredWorld(settings, metrics)
