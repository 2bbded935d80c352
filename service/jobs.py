"""What a worker does with a job: investigate a ticket, or resume it after approvals.

Jobs arrive at least once, so every step is safe to repeat:
* a finished investigation is never run again (the status check and the conditional
  `finish` make completion happen exactly once);
* a job taken over from a dead worker carries on from the last checkpoint, so finished
  connector calls are not repeated, and effectors are idempotent through their ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from core.errors import PermanentError
from core.telemetry import Metrics, get_logger, log_context
from service.investigations import FINISHED, InvestigationNotFoundError, InvestigationStore, Status
from service.queue.base import Job
from service.worlds import Worlds

log = get_logger("sleuth.worker")
FLUSH_S = 0.25


class EventRecorder:
    """Collects the graph's progress events and stores them in batches, off the event loop."""

    def __init__(self, store: InvestigationStore, investigation_id: str) -> None:
        self.store = store
        self.investigation_id = investigation_id
        self._pending: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        self._pending.append(event)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(FLUSH_S)
        await self.flush()

    async def flush(self) -> None:
        """Store what was collected so far."""
        batch, self._pending = self._pending, []
        if batch:
            await asyncio.to_thread(self.store.add_events, self.investigation_id, batch)

    async def close(self) -> None:
        """Store the rest."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()


class InvestigationJobs:
    """The job handler of every worker, embedded or scaled out."""

    def __init__(self, store: InvestigationStore, worlds: Worlds, *, worker: str,
                 metrics: Metrics | None = None) -> None:
        self.store = store
        self.worlds = worlds
        self.worker = worker
        self.metrics = metrics

    async def handle(self, job: Job) -> None:
        """Run one job to completion (or to a pause for approvals)."""
        try:
            row = await asyncio.to_thread(self.store.get, job.investigation_id)
        except InvestigationNotFoundError:
            log.error("job_without_investigation", investigation_id=job.investigation_id)
            return
        status = Status(row.status)
        if status in FINISHED:
            return  # a redelivered job of a finished investigation: nothing to do
        if job.kind == "investigate" and status is Status.WAITING_APPROVAL:
            return  # it ran; it now waits for people, and a decision sends a resume job
        if not await asyncio.to_thread(self.store.start, row.id, self.worker):
            return
        ticket = row.ticket_model()
        recorder = EventRecorder(self.store, row.id)
        with log_context(investigation_id=row.id, ticket_id=row.ticket_id):
            recorder({"step": "worker", "detail": f"{job.kind} on {self.worker}, "
                                                  f"attempt {job.attempt}"})
            try:
                inv = await self.worlds.investigator(ticket)
                try:
                    # a checkpoint exists after a crash or a pause: carry on from it
                    record = await inv.investigate_or_resume(row.id, on_event=recorder)
                except KeyError:
                    record = await inv.investigate(ticket, investigation_id=row.id,
                                                   on_event=recorder)
            except PermanentError as exc:
                recorder({"step": "failed", "detail": f"{exc.code}: {exc.message}"})
                await recorder.close()
                await asyncio.to_thread(self.store.fail, row.id, f"{exc.code}: {exc.message}")
                return
            except Exception as exc:
                recorder({"step": "error", "detail": f"{type(exc).__name__}: {exc}"[:500]})
                await recorder.close()
                await asyncio.to_thread(self.store.note_error, row.id,
                                        f"{type(exc).__name__}: {exc}")
                raise
            await recorder.close()
        paused = bool(record.get("paused"))
        final = {"step": "waiting_approval" if paused else "completed",
                 "detail": record.get("tier", "")}
        # the final event is written with the status, by the one run whose finish counts
        if await asyncio.to_thread(self.store.finish, row.id, record, final):
            log.info("investigation_stored", investigation_id=row.id, paused=paused,
                     tier=record.get("tier"))

    async def dead(self, job: Job, error: str) -> None:
        """Mark the investigation failed: its job ran out of attempts."""
        with contextlib.suppress(InvestigationNotFoundError):
            await asyncio.to_thread(self.store.fail, job.investigation_id, error)
