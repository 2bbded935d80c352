"""A procrastinate worker's heartbeat, sent from a thread of its own.

procrastinate sends heartbeats from the worker's event loop, so a loop busy for a few
seconds (a model loading, a slow synchronous client, two cores shared by several
workers) looks like a dead worker, and its jobs are handed to others while it still
runs them. This thread keeps the heartbeat going while the process lives and its loop
has answered within `loop_silence_s`; a process killed or wedged for longer goes
silent, and its jobs are recovered.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Protocol

import psycopg

from core.telemetry import get_logger

log = get_logger("sleuth.queue")


class _HasWorkerId(Protocol):
    worker_id: int | None


class ThreadHeartbeat:
    """Updates `procrastinate_workers.last_heartbeat` of one worker every `interval_s`."""

    def __init__(self, worker: _HasWorkerId, conninfo: str, *, interval_s: float,
                 loop_silence_s: float, connect_timeout_s: float = 5) -> None:
        self.worker = worker
        self.conninfo = conninfo
        self.interval_s = interval_s
        self.loop_silence_s = loop_silence_s
        self.connect_timeout_s = connect_timeout_s
        self._loop_seen = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="queue-heartbeat", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    async def watch_loop(self) -> None:
        """Note, every interval, that the event loop still runs (cancel to stop)."""
        while True:
            self._loop_seen = time.monotonic()
            await asyncio.sleep(self.interval_s)

    def stop(self) -> None:
        """Stop the thread and wait for it (call from a thread, e.g. `asyncio.to_thread`)."""
        self._done.set()
        self._thread.join(self.interval_s + self.connect_timeout_s + 1)

    def _beat(self) -> None:
        conn: psycopg.Connection[tuple[object, ...]] | None = None
        try:
            while not self._done.wait(self.interval_s):
                worker_id = self.worker.worker_id  # None before registering, after leaving
                if worker_id is None:
                    continue
                silent = time.monotonic() - self._loop_seen
                if silent > self.loop_silence_s:
                    # wedged: stay silent so that other workers take its jobs
                    log.error("worker_loop_unresponsive", silent_s=round(silent, 1))
                    continue
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(self.conninfo, autocommit=True,
                                               connect_timeout=max(1, round(
                                                   self.connect_timeout_s)))
                    conn.execute("SELECT procrastinate_update_heartbeat_v1(%s)", (worker_id,))
                except psycopg.Error as exc:
                    log.warning("queue_heartbeat_failed", error=str(exc)[:300])
                    if conn is not None:
                        conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()
