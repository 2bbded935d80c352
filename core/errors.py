"""Errors of sleuth, each with a stable code.

    SleuthError                          (code)
    ├── TransientError                   may succeed if the same call is tried again later
    │   ├── TimeoutError                 timeout
    │   │   ├── ConnectTimeoutError      connect_timeout
    │   │   ├── ResponseTimeoutError     response_timeout
    │   │   ├── StreamStalledError       stream_stalled
    │   │   └── DeadlineExceededError    deadline_exceeded   (total budget spent; never retried)
    │   ├── RateLimitedError             rate_limited        (429; carries Retry-After)
    │   ├── UpstreamServerError          upstream_5xx        (500-599)
    │   ├── ConnectionFailedError        connection_failed   (refused, reset, DNS)
    │   └── CircuitOpenError             circuit_open        (refused locally; never retried)
    └── PermanentError                   trying again will not help
        ├── AuthError                    auth_failed         (401, 403)
        ├── InvalidRequestError          invalid_request     (400, 413, 422)
        ├── NotFoundError                not_found           (404)
        ├── BadResponseError             bad_response        (malformed or unexpected payload)
        │   └── OutputSchemaError        output_schema_violation
        ├── StreamInterruptedError       stream_interrupted  (failed after output was delivered)
        ├── NoRuleMatchedError           no_rule_matched     (the rule tier had no answer)
        └── ConfigurationError           configuration_invalid

Retry policies retry `TransientError` whose `retryable` is true, and nothing else.
Codes are part of the public contract (metrics labels, API error bodies, audit):
never rename one.
"""

from __future__ import annotations

import builtins
import email.utils
import math
import time
from typing import Any, ClassVar


class SleuthError(Exception):
    """Root of every error sleuth raises on purpose."""

    code: ClassVar[str] = "error"
    transient: ClassVar[bool] = False

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.details: dict[str, Any] = details

    @property
    def retryable(self) -> bool:
        """Say whether a retry loop may try the same call again."""
        return self.transient

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe description (code, message, details)."""
        return {"code": self.code, "message": self.message, "details": dict(self.details)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class TransientError(SleuthError):
    """A failure that may go away: timeouts, throttling, 5xx, broken connections."""

    code = "transient"
    transient = True


class TimeoutError(TransientError):
    """The call took longer than allowed."""

    code = "timeout"


class ConnectTimeoutError(TimeoutError):
    """The connection could not be opened in time."""

    code = "connect_timeout"


class ResponseTimeoutError(TimeoutError):
    """The peer accepted the request but did not answer in time."""

    code = "response_timeout"


class StreamStalledError(TimeoutError):
    """A stream sent no token for longer than the stall limit."""

    code = "stream_stalled"


class DeadlineExceededError(TimeoutError):
    """The total budget of the call, retries included, is spent."""

    code = "deadline_exceeded"

    @property
    def retryable(self) -> bool:
        return False


class RateLimitedError(TransientError):
    """The peer throttled us (HTTP 429)."""

    code = "rate_limited"

    def __init__(
        self, message: str = "", *, retry_after: float | None = None, **details: Any
    ) -> None:
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after


class UpstreamServerError(TransientError):
    """The peer failed on its side (HTTP 5xx)."""

    code = "upstream_5xx"

    def __init__(self, message: str = "", *, status: int | None = None, **details: Any) -> None:
        super().__init__(message, status=status, **details)
        self.status = status


class ConnectionFailedError(TransientError):
    """The connection was refused, reset or never resolved."""

    code = "connection_failed"


class CircuitOpenError(TransientError):
    """The circuit breaker refused the call without trying it."""

    code = "circuit_open"

    def __init__(
        self, message: str = "", *, breaker: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message or f"circuit {breaker!r} is open", breaker=breaker,
                         retry_after=retry_after)
        self.breaker = breaker
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return False


class PermanentError(SleuthError):
    """A failure that the same call will hit again."""

    code = "permanent"


class AuthError(PermanentError):
    """The credentials were refused (HTTP 401 or 403)."""

    code = "auth_failed"


class InvalidRequestError(PermanentError):
    """The request itself is wrong (HTTP 400, 413, 422)."""

    code = "invalid_request"


class NotFoundError(PermanentError):
    """The thing asked for does not exist (HTTP 404)."""

    code = "not_found"


class BadResponseError(PermanentError):
    """The peer answered with something we cannot read."""

    code = "bad_response"


class OutputSchemaError(BadResponseError):
    """A model's output does not match the schema the caller asked for."""

    code = "output_schema_violation"


class StreamInterruptedError(PermanentError):
    """A stream failed after part of its output had been delivered."""

    code = "stream_interrupted"


class NoRuleMatchedError(PermanentError):
    """The rule-based tier found no rule that answers the request."""

    code = "no_rule_matched"


class ConfigurationError(PermanentError):
    """Settings are missing, malformed or unsafe for the chosen profile."""

    code = "configuration_invalid"


def error_for_status(
    status: int, message: str = "", *, retry_after: float | None = None
) -> SleuthError:
    """Map an HTTP status code to the matching sleuth error."""
    text = message or f"HTTP {status}"
    if status == 429:
        return RateLimitedError(text, retry_after=retry_after, status=status)
    if status in (401, 403):
        return AuthError(text, status=status)
    if status == 404:
        return NotFoundError(text, status=status)
    if status in (408, 504):
        return ResponseTimeoutError(text, status=status)
    if 500 <= status <= 599:
        return UpstreamServerError(text, status=status)
    if 400 <= status <= 499:
        return InvalidRequestError(text, status=status)
    return BadResponseError(text, status=status)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a Retry-After header (delay-seconds or HTTP-date); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError):
            return None
        reference = time.time() if now is None else now
        return max(0.0, when.timestamp() - reference)
    if not math.isfinite(seconds) or seconds < 0:  # NaN, inf or negative
        return None
    return seconds


def all_error_types() -> list[builtins.type[SleuthError]]:
    """List every error class defined here (for docs and the code-uniqueness test)."""
    found: list[builtins.type[SleuthError]] = []
    stack: list[builtins.type[SleuthError]] = [SleuthError]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found
