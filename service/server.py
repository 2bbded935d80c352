"""The runnable service: the HTTP API under uvicorn and, when embedded, the workers.

API and workers share one process but not one event loop: uvicorn runs on a thread of its
own and the workers (`service.workers.run_worker`) on another, each with its own loop, so
an investigation's CPU work (graph steps, redaction, chDB) never sits on the loop that
acknowledges webhooks. Both threads share one `ServiceContext` (one engine, one metrics
registry: `/metrics` shows the workers too); `SqlJobQueue.wake` crosses the threads
thread-safely, so a job accepted by the API is taken at once instead of at the next poll.
A queue of another kind (procrastinate) gets a context of its own on the workers' loop,
because its connection pool belongs to the loop that opened it.

If the database cannot be reached at start the API still comes up (`/readyz` says
what is down, webhooks answer 503) and the tables are created once it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any

import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from core.settings import Settings
from core.telemetry import Metrics, configure_logging, get_logger
from service.api.app import create_app
from service.context import ServiceContext, build_context, prepare_database
from service.queue.sql import SqlJobQueue
from service.workers import run_worker, worker_name
from service.worlds import build_worlds

log = get_logger("sleuth.server")
# The GIL is handed over every 5 ms by default; with workers busy on CPU that wait lands
# on the API's acknowledgements. 1 ms keeps webhook p99 low at a few percent of throughput.
SWITCH_INTERVAL_S = 0.001
API_SHUTDOWN_S = 5
# API (5 s) and workers (20 s) stop within an orchestrator's usual 30 s termination grace
GRACE_S = 20.0
RETRY_MAX_S = 30.0


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """Return uvloop's loop factory when it is installed, else asyncio's."""
    if _has("uvloop"):
        uvloop = importlib.import_module("uvloop")
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return asyncio.new_event_loop


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket (port 0: a free one), reusable right after a restart."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it: without it a response written in two parts waits
    # ~40 ms for the client's delayed ACK
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def run_in_new_loop(factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to completion on a fresh loop in a helper thread (callable anywhere)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(factory())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="sleuth-close", daemon=True)
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


class _ApiThread(threading.Thread):
    """uvicorn on a loop of its own."""

    def __init__(self, server: uvicorn.Server, sock: socket.socket) -> None:
        super().__init__(name="sleuth-api", daemon=True)
        self.server = server
        self.sock = sock
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with asyncio.Runner(loop_factory=self.server.config.get_loop_factory()) as runner:
                runner.run(self.server.serve(sockets=[self.sock]))
        except BaseException as exc:  # uvicorn exits with SystemExit when startup fails
            self.error = exc
            log.error("api_stopped_on_error", error=f"{type(exc).__name__}: {exc}")


class _WorkerThread(threading.Thread):
    """The embedded worker pool on a loop of its own; restarted with backoff if it fails."""

    def __init__(self, ctx: ServiceContext, *, concurrency: int, shared: bool) -> None:
        super().__init__(name="sleuth-workers", daemon=True)
        self.ctx = ctx
        self.concurrency = concurrency
        self.shared = shared
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                runner.run(self._main())
        except asyncio.CancelledError:
            log.warning("workers_cancelled", note="running jobs are taken again after "
                                                  "their lease runs out")
        except BaseException as exc:
            self.error = exc
            log.error("workers_stopped_on_error", error=f"{type(exc).__name__}: {exc}")
        finally:
            self.ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self.ready.set()
        ctx = self.ctx if self.shared else await self._own_context()
        if ctx is None:
            return
        worlds = build_worlds(ctx.settings, ctx.metrics)
        name = worker_name("embedded")
        delay = 1.0
        try:
            while not self._stop_event.is_set():
                # run_worker sets the stop event it is given when it ends: give it its own
                attempt = asyncio.Event()
                relay = asyncio.create_task(_relay(self._stop_event, attempt))
                try:
                    await run_worker(ctx, attempt, worlds=worlds, concurrency=self.concurrency,
                                     name=name)
                    delay = 1.0
                except Exception as exc:
                    log.error("workers_failed_will_restart", retry_in_s=delay,
                              error=f"{type(exc).__name__}: {exc}"[:500])
                    await _wait(self._stop_event, delay)
                    delay = min(delay * 2, RETRY_MAX_S)
                finally:
                    relay.cancel()
        finally:
            await worlds.aclose()
            if not self.shared:
                await ctx.aclose()

    async def _own_context(self) -> ServiceContext | None:
        assert self._stop_event is not None
        delay = 1.0
        while not self._stop_event.is_set():
            try:
                return await asyncio.to_thread(build_context, self.ctx.settings,
                                               metrics=self.ctx.metrics)
            except Exception as exc:
                log.error("workers_cannot_open_queue", retry_in_s=delay,
                          error=f"{type(exc).__name__}: {exc}"[:500])
                await _wait(self._stop_event, delay)
                delay = min(delay * 2, RETRY_MAX_S)
        return None

    def request_stop(self) -> None:
        """Stop taking jobs; running ones finish."""
        if self.loop is not None and self._stop_event is not None:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._stop_event.set)

    def cancel(self) -> None:
        """Abandon running jobs (their leases run out and another worker takes them)."""
        loop = self.loop
        if loop is None:
            return

        def cancel_all() -> None:
            # every task, not just the main one: the queue waits for its job tasks
            for task in asyncio.all_tasks(loop):
                task.cancel()

        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(cancel_all)


WORKER_NICENESS = 10


def _watch_parent(parent_pid: int) -> None:
    """Stop this worker process gracefully when the process that started it is gone."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGTERM)
            return


def _worker_process_main(settings: Settings, concurrency: int, parent_pid: int) -> None:
    """Run the embedded worker pool as the main thread of a child process."""
    configure_logging(level=settings.telemetry.log_level, json=settings.telemetry.log_json)
    # acknowledging a webhook is a few milliseconds the ticket system waits for; an
    # investigation is seconds nobody waits on: the API goes first when CPU is short
    os.nice(WORKER_NICENESS)
    worker = _WorkerThread(build_context(settings, prepare=False), concurrency=concurrency,
                           shared=True)
    signal.signal(signal.SIGTERM, lambda *_: worker.request_stop())
    signal.signal(signal.SIGINT, lambda *_: worker.request_stop())
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="sleuth-parent-watch",
                     daemon=True).start()
    worker.run()


class _WorkerProcess:
    """The embedded worker pool in a child process: investigations' CPU work gets its own
    interpreter, so it cannot hold the GIL that the API needs to acknowledge webhooks."""

    def __init__(self, settings: Settings, *, concurrency: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.process = context.Process(
            target=_worker_process_main, args=(settings, concurrency, os.getpid()),
            name="sleuth-workers", daemon=False)
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def start(self) -> None:
        self.process.start()
        self.ready.set()

    def is_alive(self) -> bool:
        return self.process.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self.process.join(timeout)

    def request_stop(self) -> None:
        """Stop taking jobs; running ones finish (SIGTERM)."""
        if self.process.is_alive():
            self.process.terminate()

    def cancel(self) -> None:
        """Abandon running jobs: their leases run out and a worker takes them again."""
        if self.process.is_alive():
            self.process.kill()


class Server:
    """The HTTP service of one process, with its embedded workers when configured."""

    def __init__(self, settings: Settings, *, metrics: Metrics | None = None,
                 workers: bool | None = None, concurrency: int | None = None,
                 grace_s: float = GRACE_S, switch_interval_s: float | None = SWITCH_INTERVAL_S,
                 ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.workers = settings.workers_in_process() if workers is None else workers
        self.concurrency = concurrency or settings.queue.concurrency
        self.grace_s = grace_s
        self.switch_interval_s = switch_interval_s
        self._ctx: ServiceContext | None = None
        self._api: _ApiThread | None = None
        self._worker: _WorkerThread | _WorkerProcess | None = None
        self._url: str | None = None
        self._previous_switch: float | None = None
        self._preparing = threading.Event()
        self._hurry = threading.Event()

    # -- what it is --------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Return the base URL the API listens on (after `start`)."""
        if self._url is None:
            raise RuntimeError("the server is not started")
        return self._url

    @property
    def ctx(self) -> ServiceContext:
        """Return the service context (after `start`)."""
        if self._ctx is None:
            raise RuntimeError("the server is not started")
        return self._ctx

    def describe(self) -> str:
        """Say in one line how this process runs: embedded or scale-out."""
        queue = self.settings.queue
        if self.workers:
            return (f"embedded: API and {self.concurrency} concurrent investigation(s) in this "
                    f"process, queue {queue.backend} ({queue.name})")
        return (f"scale-out: API only; investigations run in `sleuth worker` processes on the "
                f"{queue.backend} queue ({queue.name})")

    def healthy(self) -> bool:
        """Say whether the API thread (and the workers' thread, if any) still run."""
        api_ok = self._api is not None and self._api.is_alive()
        workers_ok = self._worker is None or self._worker.is_alive()
        return api_ok and workers_ok

    # -- starting and stopping ---------------------------------------------------------

    def _open_context(self) -> ServiceContext:
        try:
            return build_context(self.settings, metrics=self.metrics)
        except SQLAlchemyError as exc:
            log.warning("database_unreachable_at_start", error=str(exc)[:300],
                        note="serving anyway; tables are created once it answers")
        ctx = build_context(self.settings, metrics=self.metrics, prepare=False)
        threading.Thread(target=self._prepare_later, args=(ctx,), name="sleuth-prepare",
                         daemon=True).start()
        return ctx

    def _prepare_later(self, ctx: ServiceContext) -> None:
        delay = 1.0
        while not self._preparing.wait(delay):
            try:
                prepare_database(ctx.engine)
                log.info("database_prepared")
                return
            except SQLAlchemyError as exc:
                log.warning("database_still_unreachable", retry_in_s=delay,
                            error=str(exc)[:200])
                delay = min(delay * 2, RETRY_MAX_S)

    def start(self, timeout_s: float = 30.0) -> str:
        """Start the API (and the workers) on background threads; return the bound URL."""
        if self._api is not None:
            raise RuntimeError("the server is already started")
        service = self.settings.service
        sock = bind_socket(service.host, service.port)
        try:
            self._ctx = self._open_context()
            config = uvicorn.Config(
                create_app(self._ctx), host=service.host, port=sock.getsockname()[1],
                loop="uvloop" if _has("uvloop") else "asyncio",
                http="httptools" if _has("httptools") else "h11",
                log_config=None, access_log=False, server_header=False,
                timeout_graceful_shutdown=API_SHUTDOWN_S)
            in_process = self.settings.service.embedded_workers_in == "process"
            if self.workers and not in_process and self.switch_interval_s is not None:
                self._previous_switch = sys.getswitchinterval()
                sys.setswitchinterval(self.switch_interval_s)
            if self.workers and in_process:
                self._worker = _WorkerProcess(self.settings, concurrency=self.concurrency)
                self._worker.start()
            elif self.workers:
                self._worker = _WorkerThread(self._ctx, concurrency=self.concurrency,
                                             shared=isinstance(self._ctx.queue, SqlJobQueue))
                self._worker.start()
                self._worker.ready.wait(timeout_s)
            self._api = _ApiThread(uvicorn.Server(config), sock)
            self._api.start()
            self._wait_started(timeout_s)
        except BaseException:
            sock.close()
            self.stop()
            raise
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        self._url = f"http://{shown}:{port}"
        log.info("server_started", url=self._url, mode=self.describe())
        return self._url

    def _wait_started(self, timeout_s: float) -> None:
        assert self._api is not None
        deadline = time.monotonic() + timeout_s
        while not self._api.server.started:
            if not self._api.is_alive():
                raise RuntimeError(f"the API did not start: {self._api.error!r}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the API did not start within {timeout_s} s")
            time.sleep(0.01)

    def stop(self, grace_s: float | None = None) -> None:
        """Stop gracefully: no new requests or jobs; running investigations get `grace_s`."""
        grace = self.grace_s if grace_s is None else grace_s
        self._preparing.set()
        if self._api is not None:
            self._api.server.should_exit = True
            self._api.join(API_SHUTDOWN_S + 5)
            if self._api.is_alive():
                self._api.server.force_exit = True
                self._api.join(5)
        if self._worker is not None:
            self._worker.request_stop()
            deadline = time.monotonic() + grace
            while (self._worker.is_alive() and time.monotonic() < deadline
                   and not self._hurry.is_set()):
                self._worker.join(0.1)
            if self._worker.is_alive():
                log.warning("workers_abandoning_jobs", grace_s=grace)
                self._worker.cancel()
                self._worker.join(10)
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            try:
                run_in_new_loop(ctx.aclose)
            except Exception as exc:  # closing must not hide why we stopped
                log.warning("context_close_failed", error=f"{type(exc).__name__}: {exc}")
        if self._previous_switch is not None:
            sys.setswitchinterval(self._previous_switch)
            self._previous_switch = None
        if self._url is not None:
            log.info("server_stopped", url=self._url)
        self._api = None
        self._worker = None

    def run(self, on_started: Callable[[str], None] | None = None) -> int:
        """Serve in the foreground until SIGTERM or SIGINT; return the exit status."""
        signalled = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if signalled.is_set():  # a second signal: stop waiting for running investigations
                self._hurry.set()
            log.info("server_signalled", signal=signal.Signals(signum).name)
            signalled.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        status = 0
        try:
            url = self.start()
            if on_started is not None:
                on_started(url)
            while not signalled.wait(0.5):
                if not self.healthy():
                    log.error("server_thread_died")
                    status = 1
                    break
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return status

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
