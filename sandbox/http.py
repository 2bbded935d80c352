"""A loopback HTTP server hosting sandbox APIs, with latency and fault injection.

Each API is *mounted* under a prefix (``/stripe``, ``/github``, ...). Every
mount has its own injected latency, a script of faults played one per request
(an HTTP status with or without ``Retry-After``, a hang, a malformed body),
the list of requests it received, and the set of methods it accepts: read-only
mounts answer ``405`` to anything else, so read-only is proven, not assumed.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass(frozen=True)
class Status:
    """Answer with an HTTP error (JSON body), optionally with Retry-After."""

    code: int
    retry_after: str | None = None
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class Hang:
    """Accept the request and say nothing for `seconds`."""

    seconds: float = 30.0


@dataclass(frozen=True)
class Malformed:
    """Answer 200 with a body that is not valid JSON."""

    body: str = '{"object": "list", "data": [ this is not json'


Fault = Status | Hang | Malformed


@dataclass
class MountState:
    """One mounted API's knobs and records."""

    name: str
    methods: frozenset[str]
    latency_s: float = 0.0
    faults: deque[Fault] = field(default_factory=deque)
    default_fault: Fault | None = None
    received: list[dict[str, Any]] = field(default_factory=list)

    def next_fault(self) -> Fault | None:
        """Return the next scripted fault, else the default one (None: behave)."""
        try:
            return self.faults.popleft()
        except IndexError:
            return self.default_fault


class _Injector:
    """ASGI middleware: records, delays, refuses writes and plays faults per mount."""

    def __init__(self, app: ASGIApp, server: LoopbackServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        mount = self.server.mount_for(scope["path"])
        if mount is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        body = await request.body()
        mount.received.append({
            "method": request.method, "path": scope["path"],
            "query": request.url.query, "headers": dict(request.headers), "body": body,
        })
        if mount.latency_s:
            await asyncio.sleep(mount.latency_s)
        response: Response | None = None
        if request.method not in mount.methods:
            response = JSONResponse({"error": {"message": "sandbox is read-only",
                                               "type": "method_not_allowed"}}, status_code=405)
        else:
            fault = mount.next_fault()
            if isinstance(fault, Hang):
                await asyncio.sleep(fault.seconds)
                response = JSONResponse({"error": "hung"}, status_code=504)
            elif isinstance(fault, Malformed):
                response = Response(fault.body, media_type="application/json")
            elif isinstance(fault, Status):
                headers = {"retry-after": fault.retry_after} if fault.retry_after else {}
                response = JSONResponse(
                    fault.body or {"error": {"message": f"injected {fault.code}"}},
                    status_code=fault.code, headers=headers)
        if response is not None:
            await response(scope, receive, send)
            return

        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


class LoopbackServer:
    """Serves Starlette routes on 127.0.0.1 from a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self.port = 0
        self._mounts: dict[str, MountState] = {}
        self._routes: list[BaseRoute] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- mounts ------------------------------------------------------------

    def mount(self, name: str, routes: list[BaseRoute], *,
              methods: frozenset[str] = frozenset({"GET", "HEAD"})) -> MountState:
        """Serve `routes` under `/name`; only `methods` are accepted there."""
        if self._server is not None:
            raise RuntimeError("mount APIs before starting the server")
        state = MountState(name=name, methods=methods)
        self._mounts[name] = state
        self._routes.append(Mount(f"/{name}", routes=routes))
        return state

    def mount_for(self, path: str) -> MountState | None:
        """Return the mount serving `path`."""
        head = path.lstrip("/").split("/", 1)[0]
        return self._mounts.get(head)

    def state(self, name: str) -> MountState:
        """Return the knobs and records of mount `name`."""
        return self._mounts[name]

    def url(self, name: str) -> str:
        """Return the base URL of mount `name`."""
        return f"http://{self.host}:{self.port}/{name}"

    def inject(self, name: str, *faults: Fault) -> None:
        """Queue faults for the next requests to mount `name`."""
        self._mounts[name].faults.extend(faults)

    def set_latency(self, name: str, seconds: float) -> None:
        """Delay every answer of mount `name` by `seconds`."""
        self._mounts[name].latency_s = seconds

    def set_default_fault(self, name: str, fault: Fault | None) -> None:
        """Make mount `name` fail this way once its script is used up (None: heal)."""
        self._mounts[name].default_fault = fault

    def received(self, name: str) -> list[dict[str, Any]]:
        """Return the requests mount `name` received, oldest first."""
        return list(self._mounts[name].received)

    def clear(self) -> None:
        """Forget faults, latency and records on every mount."""
        for state in self._mounts.values():
            state.faults.clear()
            state.default_fault = None
            state.latency_s = 0.0
            state.received.clear()

    # -- lifecycle ---------------------------------------------------------

    def build_app(self) -> ASGIApp:
        """Return the ASGI app: the mounts behind the fault injector."""
        return _Injector(Starlette(routes=self._routes), self)

    def start(self) -> Self:
        """Start serving; return once connections are accepted."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # without it, loopback requests wait ~40 ms for delayed ACKs
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self._requested_port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.build_app(), log_level="critical", access_log=False, lifespan="off",
            timeout_graceful_shutdown=1, loop="asyncio", http="h11", backlog=2048,
        )
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True,
            name=f"sandbox-{self.port}",
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("sandbox server did not start within 10 s")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def json_body(received: dict[str, Any]) -> Any:
    """Decode the JSON body of a recorded request."""
    return json.loads(received["body"] or b"null")
