"""One `ConsoleData` per process and configuration, shared by every reviewer's session.

Streamlit runs each session's script on its own thread; the service's async API (deciding
enqueues a resume job) runs on one event loop kept in a background thread, so queue
clients bound to a loop (procrastinate's) keep working across reruns.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import streamlit as st

from core.settings import Settings, load_settings
from service.context import build_context
from ui.data import ConsoleData

T = TypeVar("T")
CALL_TIMEOUT_S = 30.0


class LoopThread:
    """An event loop in a daemon thread; `run(coro)` waits for the coroutine's result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="console-loop",
                                        daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the loop and return its result (raises what it raises)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(CALL_TIMEOUT_S)

    def stop(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


_opened: list[tuple[LoopThread, ConsoleData]] = []
_opened_lock = threading.Lock()


def settings_key(settings: Settings) -> str:
    """Return a digest that changes whenever the configuration does (secrets included)."""
    text = settings.model_dump_json() + settings.database_url.get_secret_value()
    return hashlib.sha256(text.encode()).hexdigest()


@st.cache_resource(show_spinner=False, max_entries=8)
def _open(key: str, _settings: Settings) -> ConsoleData:
    loop = LoopThread()
    ctx = build_context(_settings)
    loop.run(ctx.queue.setup())
    data = ConsoleData(ctx, loop.run)
    with _opened_lock:
        _opened.append((loop, data))
    return data


def console() -> ConsoleData:
    """Return the console's data access for the configuration in the environment."""
    settings = load_settings()
    return _open(settings_key(settings), settings)


def close_all() -> None:
    """Close every console opened by this process and forget them (tests, shutdown)."""
    _open.clear()
    with _opened_lock:
        opened = list(_opened)
        _opened.clear()
    for loop, data in opened:
        loop.run(data.ctx.aclose())
        loop.stop()
