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
from governance.approvals import ApprovalService
from governance.audit import AuditLog
from governance.effectors.base import EffectorSet
from governance.redaction import Redactor
from governance.taxonomy import Taxonomy
from playbooks.store import PlaybookStore


class Runnable(Protocol):
    """A connector (or its disabled stand-in) as the graph uses it."""

    async def run(self, operation: str, params: Any = None, *,
                  budget_s: float | None = None) -> ToolResult: ...

    async def aclose(self) -> None: ...


def no_redaction(text: str, *, investigation_id: str) -> str:
    """Return text unchanged (used when no redactor is configured)."""
    return text


def no_value_redaction(value: Any, *, investigation_id: str) -> Any:
    """Return a value unchanged (used when no redactor is configured)."""
    return value


@dataclass
class GovernanceContext:
    """The governance layer as the graph uses it."""

    taxonomy: Taxonomy
    approvals: ApprovalService
    audit: AuditLog | None = None
    effectors: EffectorSet | None = None
    redactor: Redactor | None = None


@dataclass
class AgentContext:
    """The runtime context handed to every node (never checkpointed)."""

    connectors: Mapping[SourceName, Runnable]
    gateway: ModelGateway
    store: PlaybookStore
    settings: AgentSettings = field(default_factory=AgentSettings)
    pins: dict[str, str] = field(default_factory=dict)  # playbook id → version to use
    governance: GovernanceContext | None = None
    redact: Callable[..., str] = no_redaction
    redact_value: Callable[..., Any] = no_value_redaction
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def audit(self, kind: str, investigation_id: str, payload: dict[str, Any],
              actor: str = "system") -> None:
        """Append to the audit log when one is configured (payloads are redacted first)."""
        if self.governance is None or self.governance.audit is None:
            return
        clean = self.redact_value(payload, investigation_id=investigation_id)
        self.governance.audit.append(kind, clean, investigation_id=investigation_id, actor=actor)
