"""What a model provider offers the gateway."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from core.errors import BadResponseError
from core.llm.types import ModelRequest, RawCompletion, Usage
from core.resilience import Attempt


@dataclass(frozen=True)
class StreamChunk:
    """A piece of streamed output (`text`) or the final usage figures (`usage`)."""

    text: str = ""
    usage: Usage | None = None
    model: str = ""


class ModelProvider(Protocol):
    """A source of completions; raises `SleuthError`s only."""

    provider: str
    model: str

    async def complete(
        self, request: ModelRequest, schema: type[BaseModel], attempt: Attempt
    ) -> RawCompletion:
        """Return one completion whose content should match `schema`."""
        ...

    def stream(
        self, request: ModelRequest, schema: type[BaseModel], attempt: Attempt
    ) -> AsyncIterator[StreamChunk]:
        """Yield the completion's text as it arrives, then a chunk with usage."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def parse_json_object(text: str) -> dict[str, Any]:
    """Parse a model's text as one JSON object, tolerating a Markdown code fence."""
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise BadResponseError(f"model output is not JSON: {exc.msg}", position=exc.pos) from None
    if not isinstance(value, dict):
        raise BadResponseError("model output is JSON but not an object")
    return value


@functools.lru_cache(maxsize=256)
def schema_for(schema: type[BaseModel]) -> dict[str, Any]:
    """Return the JSON schema sent to models for `schema` (built once per class)."""
    # callers pass it to the SDKs, which only read it
    return schema.model_json_schema()
