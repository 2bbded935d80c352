"""A thin wrapper over PyGithub: one client per attempt, the library's own retries off.

PyGithub is synchronous, so every call runs in a worker thread. A fresh
`github.Github` is built for each attempt because its timeout is fixed when it
is built and is a single integer (the constructor asserts `int`), while the
policy gives each attempt its own connect and read limits, in fractions of a
second. `requests` accepts a `(connect, read)` tuple, and PyGithub's Requester
hands its stored timeout to `requests` unchanged, so the tuple is written onto
that attempt's own Requester (its `__timeout`, the only place it is kept).
One object per attempt also means concurrent calls never share that state.
Library errors are translated into `core.errors` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import requests
from github import Auth, Github
from github.GithubException import (
    BadAttributeException,
    BadCredentialsException,
    GithubException,
    IncompletableObject,
    RateLimitExceededException,
    UnknownObjectException,
)
from github.Repository import Repository

from connectors.github.config import GitHubConfig
from core.errors import (
    AuthError,
    BadResponseError,
    ConfigurationError,
    ConnectionFailedError,
    ConnectTimeoutError,
    NotFoundError,
    RateLimitedError,
    ResponseTimeoutError,
    SleuthError,
    error_for_status,
    parse_retry_after,
)
from core.resilience import Attempt

T = TypeVar("T")

USER_AGENT = "sleuth-github-connector"
# Name-mangled attribute of github.Requester.Requester that holds the timeout given to requests.
_TIMEOUT_ATTR = "_Requester__timeout"


def retry_after_from(
    headers: Mapping[str, Any] | None, *, now: float | None = None
) -> float | None:
    """Return the wait GitHub asks for: Retry-After, else the time until X-RateLimit-Reset."""
    lowered = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    delay = parse_retry_after(lowered.get("retry-after"))
    if delay is not None:
        return delay
    reset = lowered.get("x-ratelimit-reset")
    if reset is None:
        return None
    try:
        epoch = float(reset)
    except ValueError:
        return None
    if not math.isfinite(epoch):
        return None
    return max(0.0, epoch - (time.time() if now is None else now))


def _rate_limited(exc: GithubException, headers: Mapping[str, str]) -> bool:
    if isinstance(exc, RateLimitExceededException) or exc.status == 429:
        return True
    # GitHub answers 403 (not 429) to most throttled calls; its headers say which 403 it is
    return exc.status == 403 and (
        "retry-after" in headers or headers.get("x-ratelimit-remaining") == "0"
    )


def translate(exc: BaseException) -> SleuthError | None:
    """Return the sleuth error for an exception of PyGithub or requests (None: not theirs)."""
    if isinstance(exc, SleuthError):
        return exc
    if isinstance(exc, GithubException):
        headers = {str(k).lower(): str(v) for k, v in (exc.headers or {}).items()}
        text = f"github: HTTP {exc.status}: {exc.message or _message_of(exc.data)}"
        if isinstance(exc, BadCredentialsException):
            return AuthError(text, status=exc.status)
        if isinstance(exc, UnknownObjectException):
            return NotFoundError(text, status=exc.status)
        if _rate_limited(exc, headers):
            return RateLimitedError(text, retry_after=retry_after_from(headers), status=exc.status)
        if isinstance(exc, IncompletableObject):
            # an object came without the URL PyGithub needs: the payload is not what GitHub sends
            return BadResponseError(f"github: incomplete object in payload: {exc.message}")
        return error_for_status(exc.status, text, retry_after=retry_after_from(headers))
    if isinstance(exc, BadAttributeException):
        return BadResponseError(f"github: unexpected attribute type: {exc.actual_value!r:.80}")
    # ConnectTimeout is also a ConnectionError, so it is tested first
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ConnectTimeoutError(f"github: connect timed out: {type(exc).__name__}")
    if isinstance(exc, requests.exceptions.Timeout):
        return ResponseTimeoutError(f"github: no answer in time: {type(exc).__name__}")
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return BadResponseError("github: response body could not be decoded")
    if isinstance(exc, requests.exceptions.RequestException):
        # refused, reset, DNS, TLS, or a body cut off mid-way: the peer may be back soon
        return ConnectionFailedError(f"github: connection failed: {type(exc).__name__}")
    if isinstance(exc, ValueError):  # json.JSONDecodeError, UnicodeDecodeError
        return BadResponseError(f"github: response is not valid JSON: {type(exc).__name__}")
    if isinstance(exc, TypeError | KeyError | AttributeError):
        # PyGithub builds objects straight from the payload: a wrong shape surfaces as these
        return BadResponseError(f"github: unexpected payload shape: {type(exc).__name__}")
    return None


def _message_of(data: Any) -> str:
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])[:200]
    return "no message"


class GitHubClient:
    """Runs read-only PyGithub calls against one repository, one attempt at a time."""

    def __init__(self, config: GitHubConfig) -> None:
        if config.token is None:
            raise ConfigurationError("github: token is not set")
        self._token = config.token.get_secret_value()
        self._base_url = config.base_url
        self.repository = config.repository
        self.page_size = config.page_size

    def build(self, attempt: Attempt, *, per_page: int) -> Github:
        """Return a Github object for one attempt: no retries, no throttling, its own timeouts."""
        gh = Github(
            auth=Auth.Token(self._token),
            base_url=self._base_url,
            timeout=max(1, math.ceil(attempt.timeout_s)),  # replaced below by the exact pair
            user_agent=USER_AGENT,
            per_page=per_page,
            retry=0,  # the default GithubRetry sleeps and retries 403/5xx: the policy does that
            seconds_between_requests=None,  # default 0.25 s between reads would eat the budget
            seconds_between_writes=None,
            lazy=True,  # objects are built from what a list returns, never re-fetched one by one
        )
        requester = gh.requester
        if not hasattr(requester, _TIMEOUT_ATTR):
            raise ConfigurationError(
                "github: this PyGithub version keeps its timeout elsewhere; "
                "per-attempt timeouts cannot be set")
        setattr(requester, _TIMEOUT_ATTR, (attempt.connect_timeout_s, attempt.timeout_s))
        return gh

    async def call(self, attempt: Attempt, fn: Callable[[Repository], T], *,
                   per_page: int | None = None) -> T:
        """Run `fn(repository)` in a worker thread and return its result; raise sleuth errors."""
        return await asyncio.to_thread(self._call_sync, attempt, fn, per_page or self.page_size)

    def _call_sync(self, attempt: Attempt, fn: Callable[[Repository], T], per_page: int) -> T:
        gh = self.build(attempt, per_page=per_page)
        try:
            # lazy: no request until fn lists something under the repository
            return fn(gh.get_repo(self.repository))
        except Exception as exc:
            error = translate(exc)
            if error is None:
                raise
            raise error from exc
        finally:
            gh.close()

    async def ping(self, attempt: Attempt) -> None:
        """Fetch the repository itself (GET /repos/{owner}/{repo}) to prove access."""

        def fetch(repo: Repository) -> None:
            repo.complete()

        await self.call(attempt, fetch, per_page=1)
