"""Replay historical cases through the whole investigation graph and write replay results (v1).

Every case runs in a sandbox world of its own (loopback API servers, an in-process
chDB database), with governance on: actions that need a person stay
``pending_approval``. Cases run concurrently, at most ``workers`` at a time. A case
that cannot be replayed still gets its line, with ``error`` set; the run never stops
for one case.

Modes:

* ``rules``: the playbooks' rule tier only (then a person); offline and deterministic.
* ``cassette``: recorded model responses, keyed by a hash of the request's system
  prompt and messages; a request with no recording fails its case explicitly. With
  ``record=True`` the configured models are called and their answers written.
* ``live``: the configured model tiers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, SecretStr

from agent.factory import build_model_gateway, investigator
from agent.runner import replay_line
from core.errors import NotFoundError, SleuthError
from core.llm import ModelGateway
from core.llm.providers.base import StreamChunk
from core.llm.types import ModelRequest, RawCompletion, Usage
from core.resilience import Attempt
from core.settings import LLMSettings, ModelTierSettings, Settings, load_settings
from core.telemetry import Metrics, configure_logging
from sandbox.cases import discover, load_case
from sandbox.world import SandboxWorld

Mode = Literal["rules", "cassette", "live"]
MODES: tuple[Mode, ...] = ("rules", "cassette", "live")
LineSink = Callable[[dict[str, Any]], None]

# chDB lives in-process: worlds are loaded and dropped one at a time
_WORLD_LOCK = threading.Lock()


# -- pins ------------------------------------------------------------------


def parse_pins(items: Iterable[str]) -> dict[str, str]:
    """Parse ``ID@VERSION`` items into {id: version}; raise ValueError on a malformed one."""
    pins: dict[str, str] = {}
    for item in items:
        pid, _, version = item.partition("@")
        if not pid or not version:
            raise ValueError(f"a pin is ID@VERSION, got {item!r}")
        pins[pid.strip()] = version.strip()
    return pins


def load_versions_file(path: Path) -> dict[str, str]:
    """Read a YAML mapping ``{playbook id: version}`` (e.g. a saved active set)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: must map playbook ids to versions")
    return {str(k): str(v) for k, v in raw.items()}


# -- cassettes -------------------------------------------------------------


def request_key(request: ModelRequest) -> str:
    """Return the recording key of a request: a hash of its system prompt and messages."""
    body = json.dumps({"system": request.system,
                       "messages": [m.model_dump(mode="json") for m in request.messages]},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


class MissingRecordingError(NotFoundError):
    """A cassette replay met a request with no recording."""

    code = "cassette_missing"


class CassetteProvider:
    """A model provider that serves recorded completions, or records a real provider's.

    Replaying (``inner`` None): a request whose key has no file in ``directory`` raises
    `MissingRecordingError` and is remembered in ``misses``, so the replay can fail the
    case explicitly rather than let a fallback tier hide it. Recording: every request
    goes to ``inner`` and the completion is written to ``directory/<key>.json``.
    """

    def __init__(self, directory: Path, inner: Any = None, *, model: str = "cassette",
                 replaced: Any = None) -> None:
        self.directory = directory
        self.inner = inner
        self.replaced = replaced  # a provider this one stands in for: closed with it
        self.provider = getattr(inner, "provider", "cassette")
        self.model = getattr(inner, "model", model)
        self.misses: list[str] = []
        self.served: list[str] = []

    def path(self, key: str) -> Path:
        """Return the file of one recording."""
        return self.directory / f"{key}.json"

    async def complete(self, request: ModelRequest, schema: type[BaseModel],
                       attempt: Attempt) -> RawCompletion:
        """Serve (or record) the completion of `request`."""
        key = request_key(request)
        if self.inner is not None:
            completion: RawCompletion = await self.inner.complete(request, schema, attempt)
            self.directory.mkdir(parents=True, exist_ok=True)
            self.path(key).write_text(json.dumps({
                "key": key, "task": request.task, "provider": self.provider,
                "completion": completion.model_dump(mode="json"),
            }, indent=1, ensure_ascii=False), encoding="utf-8")
            self.served.append(key)
            return completion
        path = self.path(key)
        if not path.is_file():
            self.misses.append(key)
            raise MissingRecordingError(f"no recording for request {key[:16]} in "
                                        f"{self.directory}", key=key)
        stored = json.loads(path.read_text(encoding="utf-8"))
        self.served.append(key)
        return RawCompletion.model_validate(stored["completion"])

    async def stream(self, request: ModelRequest, schema: type[BaseModel],
                     attempt: Attempt) -> AsyncIterator[StreamChunk]:
        """Serve a recording as one chunk (investigations do not stream)."""
        completion = await self.complete(request, schema, attempt)
        content = completion.content
        yield StreamChunk(text=content if isinstance(content, str) else json.dumps(content),
                          model=completion.model)
        yield StreamChunk(usage=completion.usage, model=completion.model)

    async def aclose(self) -> None:
        """Close the recorded provider, if any."""
        for provider in (self.inner, self.replaced):
            if provider is not None:
                await provider.aclose()


def cassette_gateway(settings: Settings, directory: Path, *, record: bool,
                     metrics: Metrics) -> tuple[ModelGateway, list[CassetteProvider]]:
    """Return a gateway whose model tiers serve (or record) cassettes, and those providers."""
    providers: list[CassetteProvider] = []
    if record:
        gateway = build_model_gateway(settings, metrics)
        for tier in gateway.tiers:
            if tier.kind in ("anthropic", "openai") and tier.provider is not None:
                wrapper = CassetteProvider(directory, tier.provider)
                tier.provider = wrapper
                providers.append(wrapper)
        return gateway, providers
    # replay: one tier that serves recordings, then a person (no rule tier to hide a miss)
    tiers = [ModelTierSettings(name="cassette", kind="openai", model="cassette",
                               base_url="http://cassette.invalid", in_house=True),
             ModelTierSettings(name="human", kind="human")]
    cassette_settings = settings.model_copy(
        update={"llm": LLMSettings(tiers=tiers, prices=settings.llm.prices)})
    gateway = build_model_gateway(cassette_settings, metrics)
    for tier in gateway.tiers:
        if tier.name == "cassette":
            wrapper = CassetteProvider(directory, replaced=tier.provider)
            tier.provider = wrapper
            providers.append(wrapper)
    return gateway, providers


# -- settings --------------------------------------------------------------


RULES_TIERS = [ModelTierSettings(name="rules", kind="rules"),
               ModelTierSettings(name="human", kind="human")]


def replay_settings(mode: Mode, data_dir: Path, *, base: Settings | None = None,
                    playbooks_dir: Path | None = None) -> Settings:
    """Return the settings of a replay: its own data dir and database, the mode's tiers."""
    base = base or load_settings(None if mode == "rules" else ".env")
    update: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": SecretStr(f"sqlite:///{data_dir / 'sleuth.db'}"),
    }
    if mode == "rules":
        update["llm"] = LLMSettings(tiers=RULES_TIERS, prices=base.llm.prices)
    if playbooks_dir is not None:
        update["agent"] = base.agent.model_copy(update={"playbooks_dir": playbooks_dir})
    return base.model_copy(update=update)


# -- one case ---------------------------------------------------------------


def _usage_of(record: dict[str, Any]) -> dict[str, Any] | None:
    """Return the tokens and cost the case's model calls used, or None when no model ran."""
    total = Usage()
    cost = Decimal(0)
    ran = False
    for tier in record.get("tiers_tried") or []:
        if tier.get("kind") in ("rules", "human"):
            continue
        usage = Usage.model_validate(tier.get("usage") or {})
        if usage == Usage() and not tier.get("cost_usd"):
            continue
        ran = True
        total = total + usage
        cost += Decimal(str(tier.get("cost_usd") or 0))
    if not ran:
        return None
    return {**total.model_dump(), "cost_usd": float(cost)}


def _case_id_of(case_dir: Path) -> str:
    try:
        return load_case(case_dir).id
    except Exception:
        return case_dir.name


async def replay_case(case_dir: Path, settings: Settings, *, mode: Mode = "rules",
                      pins: dict[str, str] | None = None, cassettes: Path | None = None,
                      record: bool = False, timeout_s: float = 300.0) -> dict[str, Any]:
    """Replay one case; return its results line (never raises for a failing case)."""
    started = time.perf_counter()
    case_id = case_dir.name
    world: SandboxWorld | None = None
    gateway: ModelGateway | None = None
    cassette_providers: list[CassetteProvider] = []
    try:
        loaded = load_case(case_dir)
        case_id = loaded.id

        def start() -> SandboxWorld:
            with _WORLD_LOCK:
                return SandboxWorld(loaded).start()

        world = await asyncio.to_thread(start)
        metrics = Metrics()
        if mode == "cassette":
            if cassettes is None:
                raise ValueError("cassette mode needs a cassettes directory")
            gateway, cassette_providers = cassette_gateway(settings, cassettes, record=record,
                                                           metrics=metrics)
        running = world

        async def investigate() -> dict[str, Any]:
            async with investigator(
                settings, running.connector_settings(), pins=pins, metrics=metrics,
                gateway=gateway, checkpoints=":memory:",
                effectors=lambda engine: running.effector_set(engine, settings.resilience),
            ) as inv:
                return await inv.investigate(loaded.case.ticket)

        result = await asyncio.wait_for(investigate(), timeout_s)
        wall = (time.perf_counter() - started) * 1000
        misses = [m for p in cassette_providers for m in p.misses]
        if misses:
            return replay_line(case_id, None, wall_ms=wall,
                               error=f"cassette_missing: no recording for "
                                     f"{len(misses)} request(s): "
                                     + ", ".join(m[:16] for m in misses))
        line = replay_line(case_id, result, wall_ms=wall)
        usage = _usage_of(result)
        if usage is not None:
            line["usage"] = usage
        return line
    except Exception as exc:
        wall = (time.perf_counter() - started) * 1000
        if isinstance(exc, SleuthError):
            message = f"{exc.code}: {exc.message}"
        elif isinstance(exc, asyncio.TimeoutError):
            message = f"timeout: the case took longer than {timeout_s:g} s"
        else:
            message = f"{type(exc).__name__}: {exc}"
        return replay_line(case_id, None, wall_ms=wall, error=message)
    finally:
        if gateway is not None:
            await gateway.aclose()
        if world is not None:
            stopping = world

            def stop() -> None:
                with _WORLD_LOCK:
                    stopping.stop()

            await asyncio.to_thread(stop)


# -- many cases ----------------------------------------------------------------


@dataclass
class ReplayOptions:
    """How to replay a set of cases."""

    mode: Mode = "rules"
    workers: int = 4
    pins: dict[str, str] = field(default_factory=dict)
    cassettes: Path | None = None
    record: bool = False
    playbooks_dir: Path | None = None
    settings: Settings | None = None  # base settings (live and cassette modes)
    timeout_s: float = 300.0
    # worker processes: cases are CPU-bound in Python, so more than one process uses more
    # cores; each process replays up to `workers` cases at once
    processes: int = 1


def default_processes() -> int:
    """Return a sensible number of worker processes: the CPUs available, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


async def replay_cases(case_dirs: Sequence[Path], options: ReplayOptions,
                       on_line: LineSink | None = None) -> list[dict[str, Any]]:
    """Replay cases concurrently; return their lines in case order.

    At most `options.workers` cases run at once in each of `options.processes` processes.
    """
    if options.mode not in MODES:
        raise ValueError(f"unknown mode {options.mode!r}; use one of {', '.join(MODES)}")
    if options.mode == "cassette" and options.cassettes is None:
        raise ValueError("cassette mode needs --cassettes DIR")
    if options.processes > 1 and len(case_dirs) > options.workers:
        return await _replay_in_processes(list(case_dirs), options, on_line)
    return await _replay_here(case_dirs, options, on_line)


_PROGRESS: Any = None  # in a worker process: the queue its finished lines are reported on


def _init_worker(progress: Any) -> None:
    global _PROGRESS
    _PROGRESS = progress
    configure_logging(level="ERROR")


def _replay_shard(case_dirs: list[Path], options: ReplayOptions) -> list[dict[str, Any]]:
    """Replay a shard of the cases in a worker process, reporting each line as it ends."""
    sink: LineSink | None = _PROGRESS.put if _PROGRESS is not None else None
    return asyncio.run(_replay_here(case_dirs, options, sink))


async def _replay_in_processes(case_dirs: list[Path], options: ReplayOptions,
                               on_line: LineSink | None) -> list[dict[str, Any]]:
    count = max(1, min(options.processes, len(case_dirs)))
    # round robin: neighbouring cases (often alike in cost) go to different processes
    shards = [case_dirs[i::count] for i in range(count)]
    # spawn: a fork would copy the parent's threads (loopback servers) and chDB state
    context = multiprocessing.get_context("spawn")
    progress = context.SimpleQueue()

    def relay() -> None:
        while (line := progress.get()) is not None:
            if on_line is not None:
                on_line(line)

    relay_thread = threading.Thread(target=relay, name="replay-progress", daemon=True)
    relay_thread.start()
    loop = asyncio.get_running_loop()
    by_dir: dict[Path, dict[str, Any]] = {}
    try:
        with ProcessPoolExecutor(max_workers=count, mp_context=context,
                                 initializer=_init_worker, initargs=(progress,)) as pool:

            async def run(shard: list[Path]) -> None:
                try:
                    lines = await loop.run_in_executor(pool, _replay_shard, shard, options)
                except Exception as exc:  # a lost worker fails its cases only
                    lines = [replay_line(_case_id_of(d), None, wall_ms=0,
                                         error=f"worker process failed: "
                                               f"{type(exc).__name__}: {exc}") for d in shard]
                    for line in lines:
                        progress.put(line)
                by_dir.update(zip(shard, lines, strict=True))

            await asyncio.gather(*(run(shard) for shard in shards))
    finally:
        progress.put(None)
        await asyncio.to_thread(relay_thread.join, 10)
    return [by_dir[d] for d in case_dirs]


async def _replay_here(case_dirs: Sequence[Path], options: ReplayOptions,
                       on_line: LineSink | None) -> list[dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix="sleuth-eval-"))
    gate = asyncio.Semaphore(max(1, options.workers))

    async def one(index: int, case_dir: Path) -> dict[str, Any]:
        async with gate:
            data_dir = workdir / f"{index:04d}"
            data_dir.mkdir(parents=True, exist_ok=True)
            try:
                settings = replay_settings(options.mode, data_dir, base=options.settings,
                                           playbooks_dir=options.playbooks_dir)
            except Exception as exc:
                line = replay_line(_case_id_of(case_dir), None, wall_ms=0,
                                   error=f"settings: {exc}")
            else:
                line = await replay_case(case_dir, settings, mode=options.mode,
                                         pins=options.pins, cassettes=options.cassettes,
                                         record=options.record, timeout_s=options.timeout_s)
            if on_line is not None:
                on_line(line)
            return line

    try:
        return list(await asyncio.gather(*(one(i, d) for i, d in enumerate(case_dirs))))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def replay(cases_dir: Path, options: ReplayOptions,
           on_line: LineSink | None = None) -> list[dict[str, Any]]:
    """Replay every case under `cases_dir`; return the results lines."""
    return asyncio.run(replay_cases(discover(cases_dir), options, on_line))


# -- results files -----------------------------------------------------------------


def write_results(path: Path, lines: Iterable[dict[str, Any]]) -> None:
    """Write a results file: one JSON object a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for line in lines:
            out.write(json.dumps(line, ensure_ascii=False, sort_keys=False) + "\n")


def read_results(path: Path) -> list[dict[str, Any]]:
    """Read a results file; raise ValueError naming the line that is not a JSON object."""
    lines: list[dict[str, Any]] = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not valid JSON: {exc.msg}") from None
        if not isinstance(value, dict) or "case_id" not in value:
            raise ValueError(f"{path}:{number}: not a results line")
        lines.append(value)
    return lines
