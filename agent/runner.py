"""Run investigations: start one, resume one, and turn a record into a replay-results line."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command

from agent.context import AgentContext
from agent.graph import build_graph
from core.domain import Ticket
from core.telemetry import get_logger, log_context

log = get_logger("sleuth.agent")
EventSink = Callable[[dict[str, Any]], None]


class Investigator:
    """Investigates tickets with the compiled, checkpointed graph."""

    def __init__(self, context: AgentContext, checkpointer: BaseCheckpointSaver[str]) -> None:
        self.context = context
        self.graph = build_graph().compile(checkpointer=checkpointer)

    @staticmethod
    def _config(investigation_id: str) -> RunnableConfig:
        return {"configurable": {"thread_id": investigation_id}}

    async def _drive(self, payload: dict[str, Any] | Command[Any] | None, investigation_id: str,
                     on_event: EventSink | None) -> dict[str, Any]:
        with log_context(investigation_id=investigation_id):
            async for chunk in self.graph.astream(payload, self._config(investigation_id),
                                                  context=self.context,
                                                  stream_mode="custom"):
                if on_event is not None and isinstance(chunk, dict):
                    on_event(chunk)
            snapshot = await self.graph.aget_state(self._config(investigation_id))
        record = snapshot.values.get("record")
        if record is None:
            raise RuntimeError(f"investigation {investigation_id} stopped before finishing "
                               f"(next: {snapshot.next})")
        result = dict(record)
        # paused for people: the record stands, with the actions still pending approval
        result["paused"] = bool(snapshot.next)
        return result

    async def investigate(self, ticket: Ticket, *, investigation_id: str | None = None,
                          on_event: EventSink | None = None) -> dict[str, Any]:
        """Investigate a ticket from the start; return the investigation record."""
        iid = investigation_id or f"inv_{uuid.uuid4().hex[:16]}"
        started = time.perf_counter()
        payload = {"investigation_id": iid, "ticket": ticket.model_dump(mode="json")}
        record = await self._drive(payload, iid, on_event)
        record["wall_ms"] = round((time.perf_counter() - started) * 1000, 3)
        log.info("investigation_done", ticket_id=ticket.id, tier=record["tier"],
                 wall_ms=record["wall_ms"])
        return record

    async def resume(self, investigation_id: str, *,
                     on_event: EventSink | None = None) -> dict[str, Any]:
        """Carry on from the last checkpoint: after a crash, or after approvals were decided."""
        snapshot = await self.graph.aget_state(self._config(investigation_id))
        waiting = any(task.interrupts for task in snapshot.tasks)
        # a pause for approval is resumed with a Command; a crash by running on from the checkpoint
        payload: Command[Any] | None = Command(resume={"decided": True}) if waiting else None
        return await self._drive(payload, investigation_id, on_event)

    async def investigate_or_resume(self, investigation_id: str, *,
                                    on_event: EventSink | None = None) -> dict[str, Any]:
        """Resume an investigation that has a checkpoint; return its record when finished."""
        snapshot = await self.graph.aget_state(self._config(investigation_id))
        if not snapshot.values:
            raise KeyError(f"no checkpoint for investigation {investigation_id}")
        if not snapshot.next and snapshot.values.get("record") is not None:
            return dict(snapshot.values["record"])
        return await self.resume(investigation_id, on_event=on_event)


def replay_line(case_id: str, record: dict[str, Any] | None, *, wall_ms: float,
                error: str | None = None) -> dict[str, Any]:
    """Return one line of the replay-results format (v1) for a case."""
    if record is None or error is not None:
        return {"format": 1, "case_id": case_id, "root_cause": None, "severity": None,
                "confidence": None, "cited": [], "actions": [], "escalated": None,
                "tier": None, "degraded_sources": [], "playbook": None,
                "wall_ms": round(wall_ms), "error": error or "no record"}
    diagnosis = record.get("diagnosis") or {}
    playbooks = record.get("playbooks") or []
    return {
        "format": 1, "case_id": case_id,
        "root_cause": diagnosis.get("root_cause"), "severity": diagnosis.get("severity"),
        "confidence": diagnosis.get("confidence"),
        "cited": [{"source": c["source"], "ref": c["ref"]} for c in diagnosis.get("cited", [])],
        "actions": [{"type": a["type"], "status": a["status"]} for a in record["actions"]],
        "escalated": record["escalated"], "tier": record["tier"],
        "degraded_sources": record["degraded_sources"],
        "playbook": record.get("winning_playbook") or (playbooks[0] if playbooks else None),
        "wall_ms": round(wall_ms), "error": None,
    }
