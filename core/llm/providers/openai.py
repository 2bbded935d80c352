"""OpenAI Chat Completions through the official SDK, also for self-hosted compatible servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
from pydantic import BaseModel

from core.errors import BadResponseError, SleuthError
from core.llm.providers.base import StreamChunk, parse_json_object, schema_for
from core.llm.providers.sdk_errors import translate
from core.llm.types import ModelRequest, RawCompletion, Usage
from core.resilience import Attempt
from core.settings import ModelTierSettings


def _usage(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    details = getattr(raw, "prompt_tokens_details", None)
    cached = (getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
    prompt = raw.prompt_tokens or 0
    # OpenAI counts cached tokens inside prompt_tokens; keep them apart
    return Usage(
        input_tokens=max(0, prompt - cached),
        output_tokens=raw.completion_tokens or 0,
        cache_read_tokens=cached,
    )


class OpenAIProvider:
    """Calls OpenAI or any OpenAI-compatible server (vLLM, Ollama, llama.cpp) by base_url."""

    def __init__(self, tier: ModelTierSettings) -> None:
        # a tier that keeps data in-house is a self-hosted OpenAI-compatible server
        self.provider = "selfhosted" if tier.in_house else "openai"
        self.model = tier.model
        self.max_tokens = tier.max_tokens
        self._client = openai.AsyncOpenAI(
            api_key=tier.api_key.get_secret_value() if tier.api_key else "unset",
            base_url=tier.base_url,
            max_retries=0,
        )

    def _params(
        self, request: ModelRequest, schema: type[BaseModel], attempt: Attempt
    ) -> dict[str, Any]:
        messages: list[dict[str, str]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.extend(m.model_dump() for m in request.messages)
        return {
            "model": self.model,
            "messages": messages,
            "max_tokens": request.max_tokens or self.max_tokens,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": schema.__name__, "schema": schema_for(schema)},
            },
            "timeout": httpx2.Timeout(attempt.timeout_s, connect=attempt.connect_timeout_s),
        }

    async def complete(
        self, request: ModelRequest, schema: type[BaseModel], attempt: Attempt
    ) -> RawCompletion:
        """Return the message's JSON text, parsed, as content."""
        try:
            completion = await self._client.chat.completions.create(
                **self._params(request, schema, attempt)
            )
        except SleuthError:
            raise
        except Exception as exc:
            raise translate(exc, provider=self.provider) from exc
        if not completion.choices:
            raise BadResponseError(f"{self.provider}: answer has no choices")
        text = completion.choices[0].message.content
        if not text:
            raise BadResponseError(f"{self.provider}: answer has no content")
        return RawCompletion(
            content=parse_json_object(text), usage=_usage(completion.usage),
            model=completion.model, response_id=completion.id,
        )

    async def stream(
        self, request: ModelRequest, schema: type[BaseModel], attempt: Attempt
    ) -> AsyncIterator[StreamChunk]:
        """Yield the message text as it streams, then the usage."""
        usage = Usage()
        model = self.model
        try:
            chunks = await self._client.chat.completions.create(
                **self._params(request, schema, attempt),
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in chunks:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = _usage(chunk.usage)
                for choice in chunk.choices:
                    if choice.delta and choice.delta.content:
                        yield StreamChunk(text=choice.delta.content)
        except SleuthError:
            raise
        except Exception as exc:
            raise translate(exc, provider=self.provider) from exc
        yield StreamChunk(usage=usage, model=model)

    async def aclose(self) -> None:
        """Close the SDK's connection pool."""
        await self._client.close()
