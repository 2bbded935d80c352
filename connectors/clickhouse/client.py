"""A thin wrapper over clickhouse-connect (chDB in-process or HTTP) that speaks core.errors.

Every query carries per-query limits (`max_result_rows` with
`result_overflow_mode='throw'`, `max_execution_time`) and binds every value
server-side (`{name:Type}` placeholders): values never become SQL text.

One library client is opened lazily per connector and calls on it are
serialised by a lock. chDB's backend already serialises calls on a handle (a
call issued while another one streams silently returns nothing); the HTTP
client needs the lock because each call sets the client's socket timeouts from
its attempt. A call abandoned by an asyncio timeout keeps its worker thread
until the server gives up (`max_execution_time`) or the socket times out,
both set to the attempt's timeout, so the next attempt waits at most that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import queue
import re
import struct
import threading
from collections.abc import Callable, Mapping
from typing import Any, cast

from clickhouse_connect import get_client
from clickhouse_connect.driver.exceptions import ClickHouseError, ProgrammingError
from clickhouse_connect.driver.httpclient import HttpClient
from urllib3 import PoolManager, Timeout
from urllib3.exceptions import (
    ConnectTimeoutError as UrllibConnectTimeout,
)
from urllib3.exceptions import (
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from connectors.clickhouse.config import ClickHouseConfig
from core.errors import (
    AuthError,
    BadResponseError,
    ConfigurationError,
    ConnectionFailedError,
    ConnectTimeoutError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    ResponseTimeoutError,
    SleuthError,
    UpstreamServerError,
    error_for_status,
    parse_retry_after,
)
from core.resilience import Attempt

Row = dict[str, Any]
Columns = dict[str, list[Any]]
ClientFactory = Callable[[ClickHouseConfig, "_RecordingPool | None", float], Any]

# ClickHouse server error codes (src/Common/ErrorCodes.cpp) and what they mean for us.
_TIMEOUT_CODES = frozenset({159, 209})  # TIMEOUT_EXCEEDED, SOCKET_TIMEOUT
_AUTH_CODES = frozenset({192, 193, 194, 497, 516})  # unknown user, wrong password, access denied
_NOT_FOUND_CODES = frozenset({60, 81})  # UNKNOWN_TABLE, UNKNOWN_DATABASE
# the query itself is wrong (syntax, names, types, arguments, aggregation, parameters)
_INVALID_CODES = frozenset({6, 16, 27, 36, 41, 42, 43, 44, 46, 47, 53, 62, 69, 70, 115, 164,
                            179, 184, 215, 352, 386, 456, 457})
_TOO_MANY_ROWS_CODES = frozenset({158, 396})  # result over max_result_rows
_THROTTLED_CODES = frozenset({202})  # TOO_MANY_SIMULTANEOUS_QUERIES
_CONNECTION_CODES = frozenset({210})  # NETWORK_ERROR
_HTTP_STATUS = re.compile(r"received HTTP status (\d{3})")


class _RecordingPool(PoolManager):
    """A urllib3 pool that remembers, per thread, the last answer's Retry-After header.

    clickhouse-connect's errors keep the HTTP status only in their message and
    drop the headers, so Retry-After would otherwise be lost.
    """

    def __init__(self) -> None:
        super().__init__(num_pools=4, maxsize=4)
        self.last = threading.local()

    def urlopen(  # type: ignore[override]  # PoolManager's own signature, not RequestMethods'
            self, method: str, url: str, redirect: bool = True, **kw: Any) -> Any:
        self.last.retry_after = None
        response = super().urlopen(method, url, redirect=redirect, **kw)
        self.last.retry_after = response.headers.get("Retry-After")
        return response


def _open_library_client(config: ClickHouseConfig, pool: _RecordingPool | None,
                         timeout_s: float) -> Any:
    """Open the real clickhouse-connect client (its own retries and sessions off)."""
    if config.interface == "chdb":
        return get_client(interface="chdb", path=config.chdb_path, tz_mode="aware")
    password = config.password.get_secret_value() if config.password else ""
    client = get_client(
        interface="https" if config.secure else "http", host=config.host, port=config.port,
        username=config.username, password=password, proxy_path=config.proxy_path,
        # the handshake runs within the first attempt; the library takes whole seconds
        # here, and each query then sets float socket timeouts from its own attempt
        connect_timeout=max(1, math.ceil(timeout_s)),
        send_receive_timeout=max(1, math.ceil(timeout_s)),
        query_retries=0, autogenerate_session_id=False, pool_mgr=pool, tz_mode="aware",
        show_clickhouse_errors=True,  # keeps the cause in the message (never the password)
    )
    if isinstance(client, HttpClient):
        client.http_retries = 0  # urllib3's own retry of a failed connection; core retries
    return client


def _cause_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        reason = getattr(current, "reason", None)  # urllib3's MaxRetryError
        current = reason if isinstance(reason, BaseException) else (
            current.__cause__ or current.__context__)
    return chain


def translate(exc: BaseException, *, retry_after: str | None = None) -> SleuthError:
    """Map a clickhouse-connect / chDB / urllib3 exception to the matching sleuth error."""
    if isinstance(exc, SleuthError):
        return exc
    text = f"clickhouse: {str(exc)[:300] or type(exc).__name__}"
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        if code in _TIMEOUT_CODES:
            return ResponseTimeoutError(text, clickhouse_code=code)
        if code in _AUTH_CODES:
            return AuthError(text, clickhouse_code=code)
        if code in _NOT_FOUND_CODES:
            return NotFoundError(text, clickhouse_code=code)
        if code in _INVALID_CODES:
            return InvalidRequestError(text, clickhouse_code=code)
        if code in _TOO_MANY_ROWS_CODES:
            return BadResponseError(f"{text} (result over row_limit)", clickhouse_code=code)
        if code in _THROTTLED_CODES:
            return RateLimitedError(text, retry_after=parse_retry_after(retry_after),
                                    clickhouse_code=code)
        if code in _CONNECTION_CODES:
            return ConnectionFailedError(text, clickhouse_code=code)
        return UpstreamServerError(text, clickhouse_code=code)
    for link in _cause_chain(exc):
        # urllib3 2 makes NewConnectionError (refused, DNS) a ConnectTimeoutError: test it first
        if isinstance(link, NewConnectionError | ProtocolError | ConnectionError):
            return ConnectionFailedError(text)
        if isinstance(link, UrllibConnectTimeout):
            return ConnectTimeoutError(text)
        if isinstance(link, ReadTimeoutError | TimeoutError):
            return ResponseTimeoutError(text)
    status = _HTTP_STATUS.search(str(exc))
    if status is not None and int(status.group(1)) >= 300:
        return error_for_status(int(status.group(1)), text,
                                retry_after=parse_retry_after(retry_after))
    if isinstance(exc, ProgrammingError) and "chdb engine" in str(exc):
        return ConfigurationError(text)
    if isinstance(exc, ClickHouseError | ValueError | IndexError | struct.error | EOFError):
        return BadResponseError(text)  # e.g. a body that is not the Native format
    return UpstreamServerError(text)


class ClickHouseClient:
    """Runs bound, limited, read-only SELECTs and returns rows as dicts."""

    def __init__(self, config: ClickHouseConfig, *,
                 factory: ClientFactory | None = None) -> None:
        self.config = config
        self._factory = factory or _open_library_client
        self._pool = _RecordingPool() if config.interface == "http" else None
        self._client: Any = None  # the one chDB client (in-process: calls run one at a time)
        self._lock = threading.Lock()
        # HTTP: a few library clients, each used by one thread at a time, so one slow round
        # trip does not hold every other query (and the worker threads behind it)
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._made = 0
        self._make_lock = threading.Lock()

    def settings(self, timeout_s: float) -> dict[str, Any]:
        """Return the per-query limits for a query allowed `timeout_s` seconds."""
        # 'throw', not 'break': 'break' stops at a block boundary and hands back a
        # silently cut result (an aggregate over part of the rows would read as a
        # fact); every query also has its own LIMIT, so 'throw' only fires on a bug.
        return {
            "max_result_rows": self.config.row_limit,
            "result_overflow_mode": "throw",
            "max_execution_time": round(max(0.05, min(self.config.query_timeout_s, timeout_s)), 3),
        }

    def _checkout(self, timeout_s: float) -> Any:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._make_lock:
            if self._made < self.config.http_clients:
                self._made += 1
                try:
                    return self._factory(self.config, self._pool, timeout_s)
                except BaseException:
                    self._made -= 1
                    raise
        try:
            return self._idle.get(timeout=timeout_s)
        except queue.Empty:
            raise ResponseTimeoutError("clickhouse: no free connection within the timeout") \
                from None

    def _run(self, client: Any, sql: str, parameters: Mapping[str, Any], timeout_s: float,
             by_column: bool) -> list[Row] | Columns:
        result = client.query(sql, parameters=dict(parameters), settings=self.settings(timeout_s),
                              column_oriented=by_column)
        names = list(result.column_names)
        if by_column:
            return {n: list(c) for n, c in zip(names, result.result_columns, strict=True)}
        return [dict(zip(names, row, strict=True)) for row in result.result_rows]

    def _query_sync(self, sql: str, parameters: Mapping[str, Any], timeout_s: float,
                    connect_timeout_s: float, by_column: bool = False) -> list[Row] | Columns:
        if self._pool is None:  # chDB
            with self._lock:
                try:
                    if self._client is None:
                        self._client = self._factory(self.config, self._pool, timeout_s)
                    return self._run(self._client, sql, parameters, timeout_s, by_column)
                except Exception as exc:
                    raise translate(exc, retry_after=None) from exc
        try:
            client = self._checkout(timeout_s)
        except SleuthError:
            raise
        except Exception as exc:  # opening the client can fail like a query
            raise translate(exc, retry_after=self._retry_after()) from exc
        try:
            client.timeout = Timeout(connect=connect_timeout_s, read=timeout_s)
            return self._run(client, sql, parameters, timeout_s, by_column)
        except Exception as exc:
            raise translate(exc, retry_after=self._retry_after()) from exc
        finally:
            self._idle.put(client)

    def _retry_after(self) -> str | None:
        if self._pool is None:
            return None
        value = getattr(self._pool.last, "retry_after", None)
        return value if isinstance(value, str) else None

    async def query(self, sql: str, parameters: Mapping[str, Any], attempt: Attempt) -> list[Row]:
        """Run one SELECT with bound `parameters` within the attempt's timeouts."""
        rows = await asyncio.to_thread(self._query_sync, sql, parameters, attempt.timeout_s,
                                       attempt.connect_timeout_s)
        return cast(list[Row], rows)

    async def columns(self, sql: str, parameters: Mapping[str, Any],
                      attempt: Attempt) -> Columns:
        """Run one SELECT like `query` and return its columns (cheaper for many rows)."""
        cols = await asyncio.to_thread(self._query_sync, sql, parameters, attempt.timeout_s,
                                       attempt.connect_timeout_s, True)
        return cast(Columns, cols)

    def close(self) -> None:
        """Close the library clients (and their connection pools)."""
        with self._lock:
            clients, self._client = [self._client], None
        while True:
            try:
                clients.append(self._idle.get_nowait())
            except queue.Empty:
                break
        with self._make_lock:
            self._made = 0
        for client in clients:
            if client is None:
                continue
            with contextlib.suppress(Exception):  # closing is best effort
                client.close()
