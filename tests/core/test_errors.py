"""Tests of core.errors: stable codes, the documented hierarchy, status mapping, Retry-After."""

from __future__ import annotations

import email.utils
import inspect
import json
import re

import pytest

from core import errors
from core.errors import (
    AuthError,
    BadResponseError,
    CircuitOpenError,
    ConfigurationError,
    ConnectionFailedError,
    ConnectTimeoutError,
    DeadlineExceededError,
    InvalidRequestError,
    NoRuleMatchedError,
    NotFoundError,
    OutputSchemaError,
    PermanentError,
    RateLimitedError,
    ResponseTimeoutError,
    SleuthError,
    StreamInterruptedError,
    StreamStalledError,
    TransientError,
    UpstreamServerError,
    all_error_types,
    error_for_status,
    parse_retry_after,
)

# other modules subclass these errors; this file is about core.errors itself
ALL = [c for c in all_error_types() if c.__module__ == "core.errors"]

# One line of the tree in the module docstring: tree prefix, class name, code.
_TREE_LINE = re.compile(r"^(?P<prefix>[ │├└─]*?)(?P<name>[A-Z]\w+)\s+(?P<code>\S+)")


def _tree() -> dict[str, tuple[int, str]]:
    """Parse the docstring tree into {class name: (column of the name, code column text)}."""
    doc = errors.__doc__
    assert doc is not None
    rows: dict[str, tuple[int, str]] = {}
    for line in doc.splitlines():
        match = _TREE_LINE.match(line)
        if match and match["name"].endswith("Error"):
            rows[match["name"]] = (len(match["prefix"]), match["code"])
    return rows


def _tree_parents() -> dict[str, str | None]:
    doc = errors.__doc__
    assert doc is not None
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in doc.splitlines():
        match = _TREE_LINE.match(line)
        if not match or not match["name"].endswith("Error"):
            continue
        column = len(match["prefix"])
        while stack and stack[-1][0] >= column:
            stack.pop()
        parents[match["name"]] = stack[-1][1] if stack else None
        stack.append((column, match["name"]))
    return parents


# --- the catalogue ------------------------------------------------------------------------------


def test_all_error_types_lists_every_error_class_of_the_module() -> None:
    defined = {
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, SleuthError) and obj.__module__ == errors.__name__
    }
    assert set(ALL) == defined
    assert len(ALL) == len(set(ALL)), "a class is listed twice"


def test_codes_are_unique() -> None:
    codes = [cls.code for cls in ALL]
    duplicated = sorted({c for c in codes if codes.count(c) > 1})
    assert not duplicated, f"codes used by more than one class: {duplicated}"


def test_every_subclass_defines_its_own_code() -> None:
    for cls in ALL:
        assert "code" in vars(cls), f"{cls.__name__} inherits its code"
        assert re.fullmatch(r"[a-z][a-z0-9_]*", cls.code), cls.code


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_class_appears_by_name_in_the_docstring_tree(cls: type[SleuthError]) -> None:
    tree = _tree()
    assert cls.__name__ in tree, f"{cls.__name__} is missing from the module docstring"
    if cls not in (SleuthError, TransientError, PermanentError):  # these lines describe
        assert tree[cls.__name__][1] == cls.code, f"docstring shows the wrong code for {cls}"


@pytest.mark.parametrize("cls", [c for c in ALL if c is not SleuthError], ids=lambda c: c.__name__)
def test_docstring_tree_nesting_matches_inheritance(cls: type[SleuthError]) -> None:
    parents = _tree_parents()
    assert parents[cls.__name__] == cls.__bases__[0].__name__


def test_docstring_tree_has_nothing_that_is_not_a_class() -> None:
    names = {cls.__name__ for cls in ALL}
    assert set(_tree()) == names


# --- transient and permanent --------------------------------------------------------------------

NOT_RETRIED_TRANSIENT = {CircuitOpenError, DeadlineExceededError}


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_transient_permanent_split(cls: type[SleuthError]) -> None:
    instance = cls()
    if cls is SleuthError:
        assert not instance.retryable
        return
    is_transient = issubclass(cls, TransientError)
    is_permanent = issubclass(cls, PermanentError)
    assert is_transient != is_permanent, "every error is either transient or permanent"
    assert cls.transient is is_transient
    expected = is_transient and cls not in NOT_RETRIED_TRANSIENT
    assert instance.retryable is expected


def test_circuit_open_and_deadline_are_transient_but_not_retryable() -> None:
    for cls in NOT_RETRIED_TRANSIENT:
        assert issubclass(cls, TransientError)
        assert cls().transient is True
        assert cls().retryable is False


@pytest.mark.parametrize(
    "cls",
    [ResponseTimeoutError, ConnectTimeoutError, StreamStalledError, RateLimitedError,
     UpstreamServerError, ConnectionFailedError],
)
def test_ordinary_transient_errors_are_retryable(cls: type[SleuthError]) -> None:
    assert cls().retryable is True


@pytest.mark.parametrize(
    "cls",
    [AuthError, InvalidRequestError, NotFoundError, BadResponseError, OutputSchemaError,
     StreamInterruptedError, NoRuleMatchedError, ConfigurationError],
)
def test_permanent_errors_are_not_retryable(cls: type[SleuthError]) -> None:
    assert cls().retryable is False


def test_error_timeout_does_not_shadow_builtin_for_catchers() -> None:
    # core.errors.TimeoutError is a sleuth error, not the builtin one
    assert not issubclass(errors.TimeoutError, TimeoutError)
    assert issubclass(errors.TimeoutError, TransientError)


# --- messages and payloads ----------------------------------------------------------------------


def test_message_defaults_to_code_and_details_are_kept() -> None:
    exc = NotFoundError()
    assert exc.message == "not_found"
    assert str(exc) == "not_found"
    exc = NotFoundError("ticket 7 is gone", ticket=7)
    assert exc.message == "ticket 7 is gone"
    assert exc.to_dict() == {"code": "not_found", "message": "ticket 7 is gone",
                             "details": {"ticket": 7}}
    assert repr(exc) == "NotFoundError('ticket 7 is gone')"


def test_to_dict_returns_a_copy_of_details() -> None:
    exc = AuthError("no", status=401)
    payload = exc.to_dict()
    payload["details"]["status"] = 999
    assert exc.details == {"status": 401}


def test_rate_limited_and_circuit_open_carry_retry_after() -> None:
    limited = RateLimitedError("slow down", retry_after=2.5)
    assert limited.retry_after == 2.5
    assert limited.details["retry_after"] == 2.5
    assert RateLimitedError().retry_after is None

    refused = CircuitOpenError(breaker="anthropic", retry_after=4.0)
    assert refused.retry_after == 4.0
    assert refused.breaker == "anthropic"
    assert "anthropic" in refused.message
    assert refused.to_dict()["details"] == {"breaker": "anthropic", "retry_after": 4.0}


def test_upstream_server_error_carries_status() -> None:
    exc = UpstreamServerError("boom", status=503)
    assert exc.status == 503
    assert exc.details == {"status": 503}


# --- error_for_status ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, InvalidRequestError),
        (401, AuthError),
        (403, AuthError),
        (404, NotFoundError),
        (408, ResponseTimeoutError),
        (413, InvalidRequestError),
        (422, InvalidRequestError),
        (429, RateLimitedError),
        (500, UpstreamServerError),
        (502, UpstreamServerError),
        (503, UpstreamServerError),
        (504, ResponseTimeoutError),
        (599, UpstreamServerError),
        (418, InvalidRequestError),
    ],
)
def test_error_for_status_maps_each_status(status: int, cls: type[SleuthError]) -> None:
    exc = error_for_status(status)
    assert type(exc) is cls
    assert exc.details["status"] == status
    assert exc.message == f"HTTP {status}"


@pytest.mark.parametrize("status", [200, 204, 301, 302, 600, 100])
def test_error_for_status_outside_4xx_5xx_is_a_bad_response(status: int) -> None:
    exc = error_for_status(status)
    assert type(exc) is BadResponseError
    assert not exc.retryable


def test_error_for_status_429_carries_retry_after() -> None:
    exc = error_for_status(429, "too many", retry_after=12.0)
    assert isinstance(exc, RateLimitedError)
    assert exc.retry_after == 12.0
    assert exc.message == "too many"
    assert exc.retryable
    assert error_for_status(429).retry_after is None  # type: ignore[attr-defined]


def test_error_for_status_5xx_sets_status_attribute() -> None:
    exc = error_for_status(502, "bad gateway")
    assert isinstance(exc, UpstreamServerError)
    assert exc.status == 502
    assert exc.message == "bad gateway"


@pytest.mark.parametrize(("status", "retryable"), [(408, True), (504, True), (500, True),
                                                    (401, False), (422, False), (404, False)])
def test_error_for_status_retryability(status: int, retryable: bool) -> None:
    assert error_for_status(status).retryable is retryable


# --- parse_retry_after --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("  7 ", 7.0),
        ("1.5", 1.5),
        ("0.25", 0.25),
    ],
)
def test_parse_retry_after_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date_in_the_future() -> None:
    when = 1_445_412_480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    header = email.utils.formatdate(when, usegmt=True)
    assert header == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert parse_retry_after(header, now=when - 30) == pytest.approx(30.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=when - 90.5) == pytest.approx(
        90.5
    )


def test_parse_retry_after_http_date_in_the_past_is_zero() -> None:
    when = 1_445_412_480.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=when + 100) == 0.0


def test_parse_retry_after_http_date_uses_wall_clock_without_now() -> None:
    # a date far in the past is 0 against the real clock
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "soon", "tomorrow at noon", "12s", "-5", "-0.5", "nan", "NaN", "-inf",
     "Wed, 32 Foo 2015 99:99:99 GMT"],
)
def test_parse_retry_after_unreadable_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=0.0) is None


@pytest.mark.parametrize("value", ["inf", "Infinity"])
def test_parse_retry_after_refuses_infinity(value: str) -> None:
    assert parse_retry_after(value) is None


def test_rate_limited_to_dict_is_json_safe_for_readable_headers() -> None:
    exc = error_for_status(429, retry_after=parse_retry_after("3"))
    assert json.loads(json.dumps(exc.to_dict(), allow_nan=False))["details"]["retry_after"] == 3.0


def test_error_codes_are_unique_across_the_project() -> None:
    import agent.factory  # noqa: F401 - loads every module that defines errors
    import sandbox.cases  # noqa: F401

    codes = [cls.code for cls in all_error_types()]
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)
