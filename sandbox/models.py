"""Loopback servers that speak the Anthropic Messages and OpenAI Chat Completions APIs.

One server hosts any number of named endpoints: ``/{name}/v1/messages`` speaks
Anthropic, ``/{name}/v1/chat/completions`` speaks OpenAI. Each endpoint plays a
script of behaviours (a reply, an HTTP error, a hang, malformed JSON, a stream
cut or stalled after some tokens), one per request, then its default. The real
SDKs are pointed at it by ``base_url``; it records every request it receives.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from sandbox.http import Hang as Hang  # scripted like the other behaviours
from sandbox.http import LoopbackServer
from sandbox.http import Malformed as Malformed


@dataclass(frozen=True)
class Reply:
    """Answer with `output` (as a tool call for Anthropic, JSON text for OpenAI)."""

    output: dict[str, Any] | None = None
    text: str | None = None  # raw text instead of `output` (e.g. not JSON at all)
    input_tokens: int = 100
    output_tokens: int = 20
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    delay_s: float = 0.0
    chunk_chars: int = 8  # streaming: characters per delta


@dataclass(frozen=True)
class Status:
    """Answer with an HTTP error in the API's error format."""

    code: int
    retry_after: str | None = None
    message: str = "scripted failure"


@dataclass(frozen=True)
class StreamCut:
    """Stream `after` deltas of `reply`, then drop the connection."""

    reply: Reply
    after: int = 2


@dataclass(frozen=True)
class StreamStall:
    """Stream `after` deltas of `reply`, then go silent for `seconds`."""

    reply: Reply
    after: int = 2
    seconds: float = 30.0


Behaviour = Reply | Status | Hang | Malformed | StreamCut | StreamStall


@dataclass
class Endpoint:
    """One named endpoint's script, default and received requests."""

    default: Behaviour = field(default_factory=lambda: Reply(output={"answer": "ok"}))
    script: deque[Behaviour] = field(default_factory=deque)
    received: list[dict[str, Any]] = field(default_factory=list)

    def next(self) -> Behaviour:
        """Return the next scripted behaviour, or the default."""
        try:
            return self.script.popleft()
        except IndexError:
            return self.default


class _Cut(Exception):
    """Raised inside a stream to make the server drop the connection."""


def _anthropic_usage(reply: Reply) -> dict[str, int]:
    return {
        "input_tokens": reply.input_tokens,
        "output_tokens": reply.output_tokens,
        "cache_creation_input_tokens": reply.cache_write_tokens,
        "cache_read_input_tokens": reply.cache_read_tokens,
    }


def _openai_usage(reply: Reply) -> dict[str, Any]:
    # OpenAI's prompt_tokens include cached tokens
    prompt = reply.input_tokens + reply.cache_read_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": reply.output_tokens,
        "total_tokens": prompt + reply.output_tokens,
        "prompt_tokens_details": {"cached_tokens": reply.cache_read_tokens},
    }


def _payload_text(reply: Reply) -> str:
    return reply.text if reply.text is not None else json.dumps(reply.output or {})


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(1, size))] or [""]


def _sse(event: str | None, data: Any) -> bytes:
    head = f"event: {event}\n" if event else ""
    body = data if isinstance(data, str) else json.dumps(data)
    return f"{head}data: {body}\n\n".encode()


class ModelSandbox(LoopbackServer):
    """A loopback server with scriptable Anthropic- and OpenAI-speaking endpoints."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self._endpoints: dict[str, Endpoint] = defaultdict(Endpoint)
        self._lock = threading.Lock()
        self.app = Starlette(routes=[
            Route("/{name}/v1/messages", self._anthropic, methods=["POST"]),
            Route("/{name}/v1/chat/completions", self._openai, methods=["POST"]),
        ])

    # -- scripting ---------------------------------------------------------

    def endpoint(self, name: str) -> Endpoint:
        """Return (creating if needed) the endpoint called `name`."""
        with self._lock:
            return self._endpoints[name]

    def script(self, name: str, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next requests to `name`."""
        self.endpoint(name).script.extend(behaviours)

    def set_default(self, name: str, behaviour: Behaviour) -> None:
        """Set what `name` does once its script is used up."""
        self.endpoint(name).default = behaviour

    def received(self, name: str) -> list[dict[str, Any]]:
        """Return the requests `name` received, oldest first."""
        return list(self.endpoint(name).received)

    def reset(self) -> None:
        """Forget every script, default and recorded request."""
        with self._lock:
            self._endpoints.clear()

    def anthropic_url(self, name: str = "anthropic") -> str:
        """Return the base_url for the Anthropic SDK."""
        return f"http://{self.host}:{self.port}/{name}"

    def openai_url(self, name: str = "openai") -> str:
        """Return the base_url for the OpenAI SDK."""
        return f"http://{self.host}:{self.port}/{name}/v1"

    def build_app(self) -> ASGIApp:
        """Return the model APIs' app (no mounts, no injected faults: scripts drive it)."""
        return self.app

    # -- handlers ----------------------------------------------------------

    async def _take(self, request: Request) -> tuple[dict[str, Any], Behaviour]:
        name = request.path_params["name"]
        body = json.loads(await request.body())
        endpoint = self.endpoint(name)
        endpoint.received.append({"body": body, "headers": dict(request.headers)})
        return body, endpoint.next()

    async def _common(self, behaviour: Behaviour, error_type: str) -> Response | None:
        if isinstance(behaviour, Hang):
            await asyncio.sleep(behaviour.seconds)
            return JSONResponse({"error": "hung"}, status_code=504)
        if isinstance(behaviour, Malformed):
            return Response(behaviour.body, media_type="application/json")
        if isinstance(behaviour, Status):
            headers = {"retry-after": behaviour.retry_after} if behaviour.retry_after else {}
            if error_type == "anthropic":
                body: dict[str, Any] = {"type": "error", "error": {
                    "type": "api_error", "message": behaviour.message}}
            else:
                body = {"error": {"message": behaviour.message, "type": "server_error",
                                  "code": None, "param": None}}
            return JSONResponse(body, status_code=behaviour.code, headers=headers)
        return None

    @staticmethod
    def _stream_plan(behaviour: Behaviour) -> tuple[Reply, int | None, float, bool]:
        """Return (reply, deltas before trouble, stall seconds, cut?)."""
        if isinstance(behaviour, StreamCut):
            return behaviour.reply, behaviour.after, 0.0, True
        if isinstance(behaviour, StreamStall):
            return behaviour.reply, behaviour.after, behaviour.seconds, False
        assert isinstance(behaviour, Reply)
        return behaviour, None, 0.0, False

    async def _anthropic(self, request: Request) -> Response:
        body, behaviour = await self._take(request)
        early = await self._common(behaviour, "anthropic")
        if early is not None:
            return early
        reply, after, stall, cut = self._stream_plan(behaviour)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        model = body.get("model", "claude")
        tool = (body.get("tools") or [{}])[0].get("name")
        msg_id = f"msg_{uuid.uuid4().hex[:20]}"
        if not body.get("stream"):
            if tool and reply.text is None:
                content: list[dict[str, Any]] = [{"type": "tool_use", "id": "toolu_01",
                                                  "name": tool, "input": reply.output or {}}]
            else:
                content = [{"type": "text", "text": _payload_text(reply)}]
            return JSONResponse({
                "id": msg_id, "type": "message", "role": "assistant", "model": model,
                "content": content, "stop_reason": "tool_use" if tool else "end_turn",
                "stop_sequence": None, "usage": _anthropic_usage(reply),
            })

        async def events() -> AsyncIterator[bytes]:
            start_usage = {**_anthropic_usage(reply), "output_tokens": 1}
            yield _sse("message_start", {"type": "message_start", "message": {
                "id": msg_id, "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}})
            as_tool = bool(tool) and reply.text is None
            block = ({"type": "tool_use", "id": "toolu_01", "name": tool, "input": {}}
                     if as_tool else {"type": "text", "text": ""})
            yield _sse("content_block_start",
                       {"type": "content_block_start", "index": 0, "content_block": block})
            yield _sse("ping", {"type": "ping"})
            for i, piece in enumerate(_chunks(_payload_text(reply), reply.chunk_chars)):
                if after is not None and i == after:
                    if cut:
                        raise _Cut
                    await asyncio.sleep(stall)
                delta = ({"type": "input_json_delta", "partial_json": piece} if as_tool
                         else {"type": "text_delta", "text": piece})
                yield _sse("content_block_delta",
                           {"type": "content_block_delta", "index": 0, "delta": delta})
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
            yield _sse("message_delta", {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use" if as_tool else "end_turn",
                          "stop_sequence": None},
                "usage": {"output_tokens": reply.output_tokens}})
            yield _sse("message_stop", {"type": "message_stop"})

        return StreamingResponse(events(), media_type="text/event-stream")

    async def _openai(self, request: Request) -> Response:
        body, behaviour = await self._take(request)
        early = await self._common(behaviour, "openai")
        if early is not None:
            return early
        reply, after, stall, cut = self._stream_plan(behaviour)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        model = body.get("model", "gpt")
        created = int(time.time())
        cid = f"chatcmpl-{uuid.uuid4().hex[:20]}"
        text = _payload_text(reply)
        if not body.get("stream"):
            return JSONResponse({
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": text,
                                         "refusal": None}}],
                "usage": _openai_usage(reply),
            })
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"id": cid, "object": "chat.completion.chunk", "created": created,
                    "model": model, "choices": [{"index": 0, "delta": delta,
                                                 "finish_reason": finish, "logprobs": None}]}

        async def events() -> AsyncIterator[bytes]:
            yield _sse(None, chunk({"role": "assistant", "content": ""}))
            for i, piece in enumerate(_chunks(text, reply.chunk_chars)):
                if after is not None and i == after:
                    if cut:
                        raise _Cut
                    await asyncio.sleep(stall)
                yield _sse(None, chunk({"content": piece}))
            yield _sse(None, chunk({}, "stop"))
            if include_usage:
                yield _sse(None, {"id": cid, "object": "chat.completion.chunk",
                                  "created": created, "model": model, "choices": [],
                                  "usage": _openai_usage(reply)})
            yield _sse(None, "[DONE]")

        return StreamingResponse(events(), media_type="text/event-stream")


def closed_port(host: str = "127.0.0.1") -> int:
    """Return a port on `host` with nothing listening (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
