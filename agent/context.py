"""What every node of the graph may use: connectors, the model gateway, playbooks, hooks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from connectors.base import ToolResult
from core.domain import SourceName
from core.llm import ModelGateway
from core.settings import AgentSettings
from playbooks.store import PlaybookStore


class Runnable(Protocol):
    """A connector (or its disabled stand-in) as the graph uses it."""

    async def run(self, operation: str, params: Any = None, *,
                  budget_s: float | None = None) -> ToolResult: ...

    async def aclose(self) -> None: ...


def no_redaction(text: str, *, investigation_id: str) -> str:
    """Return text unchanged (the governance layer replaces this hook)."""
    return text


@dataclass
class AgentContext:
    """The runtime context handed to every node (never checkpointed)."""

    connectors: Mapping[SourceName, Runnable]
    gateway: ModelGateway
    store: PlaybookStore
    settings: AgentSettings = field(default_factory=AgentSettings)
    pins: dict[str, str] = field(default_factory=dict)  # playbook id → version to use
    redact: Callable[..., str] = no_redaction
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
