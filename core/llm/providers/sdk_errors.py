"""Translate the Anthropic and OpenAI SDKs' exceptions into sleuth errors."""

from __future__ import annotations

import json

import anthropic
import httpx2
import openai

from core.errors import (
    BadResponseError,
    ConnectionFailedError,
    ConnectTimeoutError,
    ResponseTimeoutError,
    SleuthError,
    error_for_status,
    parse_retry_after,
)


def translate(exc: BaseException, *, provider: str) -> SleuthError:
    """Return the sleuth error for an exception raised by an SDK or its transport."""
    if isinstance(exc, SleuthError):
        return exc
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, anthropic.APIStatusError | openai.APIStatusError):
        retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
        err = error_for_status(
            exc.status_code, f"{provider}: HTTP {exc.status_code}", retry_after=retry_after
        )
        err.details["provider"] = provider
        return err
    if isinstance(exc, anthropic.APITimeoutError | openai.APITimeoutError):
        if isinstance(cause, httpx2.ConnectTimeout):
            return ConnectTimeoutError(f"{provider}: connect timed out", provider=provider)
        return ResponseTimeoutError(f"{provider}: response timed out", provider=provider)
    if isinstance(exc, anthropic.APIResponseValidationError | openai.APIResponseValidationError):
        return BadResponseError(f"{provider}: response does not match the API", provider=provider)
    if isinstance(exc, anthropic.APIConnectionError | openai.APIConnectionError):
        return ConnectionFailedError(f"{provider}: connection failed", provider=provider)
    if isinstance(exc, httpx2.ConnectTimeout):
        return ConnectTimeoutError(f"{provider}: connect timed out", provider=provider)
    if isinstance(exc, httpx2.TimeoutException):
        return ResponseTimeoutError(f"{provider}: response timed out", provider=provider)
    if isinstance(exc, httpx2.TransportError):
        return ConnectionFailedError(
            f"{provider}: connection broken ({type(exc).__name__})", provider=provider
        )
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return BadResponseError(f"{provider}: malformed JSON in response", provider=provider)
    if isinstance(exc, anthropic.APIError | openai.APIError | ValueError | KeyError | TypeError):
        return BadResponseError(
            f"{provider}: unreadable response ({type(exc).__name__})", provider=provider
        )
    return BadResponseError(f"{provider}: unexpected {type(exc).__name__}", provider=provider)
