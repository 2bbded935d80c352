"""The rule-based tier: answers from deterministic rules when no model is reachable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Protocol

from pydantic import BaseModel

from core.errors import NoRuleMatchedError
from core.llm.providers.base import StreamChunk
from core.llm.types import ModelRequest, RawCompletion
from core.resilience import Attempt


class RuleEngine(Protocol):
    """Answers a request from rules; returns None when no rule applies."""

    name: str

    def answer(
        self, request: ModelRequest, schema: type[BaseModel]
    ) -> BaseModel | dict[str, Any] | None:
        """Return an answer matching `schema`, or None."""
        ...


class NoRules:
    """The engine used until rules are configured: it never has an answer."""

    name = "none"

    def answer(self, request: ModelRequest, schema: type[BaseModel]) -> None:
        """Return None: there are no rules."""
        return None


class RulesProvider:
    """Adapts a `RuleEngine` to the provider interface (no tokens, no cost)."""

    provider = "rules"

    def __init__(self, engine: RuleEngine) -> None:
        self.engine = engine
        self.model = engine.name

    def _answer(self, request: ModelRequest, schema: type[BaseModel]) -> dict[str, Any]:
        answer = self.engine.answer(request, schema)
        if answer is None:
            raise NoRuleMatchedError(f"rule engine {self.engine.name!r} has no answer")
        return answer.model_dump(mode="json") if isinstance(answer, BaseModel) else answer

    async def complete(
        self, request: ModelRequest, schema: type[BaseModel], attempt: Attempt
    ) -> RawCompletion:
        """Return the engine's answer."""
        return RawCompletion(content=self._answer(request, schema), model=self.model)

    async def stream(
        self, request: ModelRequest, schema: type[BaseModel], attempt: Attempt
    ) -> AsyncIterator[StreamChunk]:
        """Yield the engine's answer as one chunk."""
        yield StreamChunk(text=json.dumps(self._answer(request, schema)))
        yield StreamChunk(model=self.model)

    async def aclose(self) -> None:
        """Nothing to release."""
