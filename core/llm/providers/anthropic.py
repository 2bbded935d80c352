"""Anthropic Messages API through the official SDK; structure through a forced tool call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
from pydantic import BaseModel

from core.errors import BadResponseError, SleuthError
from core.llm.providers.base import StreamChunk, parse_json_object, schema_for
from core.llm.providers.sdk_errors import translate
from core.llm.types import ModelRequest, RawCompletion, Usage
from core.resilience import Attempt
from core.settings import ModelTierSettings

OUTPUT_TOOL = "submit_output"


def _usage(raw: Any) -> Usage:
    return Usage(
        input_tokens=getattr(raw, "input_tokens", 0) or 0,
        output_tokens=getattr(raw, "output_tokens", 0) or 0,
        cache_read_tokens=getattr(raw, "cache_read_input_tokens", 0) or 0,
        cache_write_tokens=getattr(raw, "cache_creation_input_tokens", 0) or 0,
    )


class AnthropicProvider:
    """Calls Claude models; the SDK's own retries are off, the gateway owns retrying."""

    provider = "anthropic"

    def __init__(self, tier: ModelTierSettings) -> None:
        self.model = tier.model
        self.max_tokens = tier.max_tokens
        self._client = anthropic.AsyncAnthropic(
            api_key=tier.api_key.get_secret_value() if tier.api_key else "unset",
            base_url=tier.base_url,
            max_retries=0,
        )

    def _params(
        self, request: ModelRequest, schema: type[BaseModel], attempt: Attempt
    ) -> dict[str, Any]:
        system: Any = request.system
        if request.system and request.cache_system_prompt:
            system = [{"type": "text", "text": request.system,
                       "cache_control": {"type": "ephemeral"}}]
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens or self.max_tokens,
            "messages": [m.model_dump() for m in request.messages],
            "tools": [{
                "name": OUTPUT_TOOL,
                "description": "Return the final answer in the required structure.",
                "input_schema": schema_for(schema),
            }],
            "tool_choice": {"type": "tool", "name": OUTPUT_TOOL},
            "timeout": httpx2.Timeout(attempt.timeout_s, connect=attempt.connect_timeout_s),
        }
        if system:
            params["system"] = system
        return params

    async def complete(
        self, request: ModelRequest, schema: type[BaseModel], attempt: Attempt
    ) -> RawCompletion:
        """Return the forced tool call's input (or a JSON text block) as content."""
        try:
            message = await self._client.messages.create(**self._params(request, schema, attempt))
        except SleuthError:
            raise
        except Exception as exc:
            raise translate(exc, provider=self.provider) from exc
        content: Any = None
        for block in message.content:
            if block.type == "tool_use" and block.name == OUTPUT_TOOL:
                content = block.input
                break
        if content is None:
            texts = [b.text for b in message.content if b.type == "text"]
            if not texts:
                raise BadResponseError("anthropic: no tool call and no text in the answer")
            content = parse_json_object("".join(texts))
        return RawCompletion(
            content=content, usage=_usage(message.usage), model=message.model,
            response_id=message.id,
        )

    async def stream(
        self, request: ModelRequest, schema: type[BaseModel], attempt: Attempt
    ) -> AsyncIterator[StreamChunk]:
        """Yield the tool input's JSON text as it streams, then the usage."""
        usage = Usage()
        model = self.model
        try:
            events = await self._client.messages.create(
                **self._params(request, schema, attempt), stream=True
            )
            async for event in events:
                if event.type == "message_start":
                    usage = _usage(event.message.usage)
                    model = event.message.model
                elif event.type == "content_block_delta":
                    delta = event.delta
                    text = getattr(delta, "partial_json", None) or getattr(delta, "text", None)
                    if text:
                        yield StreamChunk(text=text)
                elif event.type == "message_delta" and event.usage is not None:
                    # message_delta carries cumulative output tokens
                    usage = usage.model_copy(
                        update={"output_tokens": event.usage.output_tokens or 0}
                    )
        except SleuthError:
            raise
        except Exception as exc:
            raise translate(exc, provider=self.provider) from exc
        yield StreamChunk(usage=usage, model=model)

    async def aclose(self) -> None:
        """Close the SDK's connection pool."""
        await self._client.close()
