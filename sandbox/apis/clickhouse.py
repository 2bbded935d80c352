"""The request log in an in-process ClickHouse (chDB), and a ClickHouse HTTP endpoint over it.

Each case world gets a database of its own (`database_name`), so worlds loaded
side by side never see each other's rows. `load_world` creates the database
and the spec's table and inserts the case's rows column-wise in batches.
`synthetic_rows` makes a realistic, seeded log for benchmarks. `http_routes`
speaks enough of ClickHouse's HTTP interface (query in the URL or body,
`param_*` bound values, settings as URL parameters, exception-code header) for
clickhouse-connect's HTTP client, backed by the same chDB engine and read-only
(`readonly=2`), so the HTTP path and its faults run through the real client.
"""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import chdb
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from connectors.clickhouse.config import (
    IDENTIFIER,
    REQUEST_LOG_COLUMNS,
    REQUEST_LOG_ORDER_BY,
    ClickHouseConfig,
)
from core.errors import InvalidRequestError
from sandbox.cases import World

COLUMNS = tuple(name for name, _ in REQUEST_LOG_COLUMNS)
_IDENT = re.compile(IDENTIFIER)
_INTS = frozenset({"status", "latency_ms", "prompt_tokens", "completion_tokens"})
BATCH_ROWS = 100_000


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise InvalidRequestError(f"not a safe ClickHouse identifier: {name!r}")
    return f"`{name}`"


def database_name(case_id: str) -> str:
    """Return a database name unique to one loading of case `case_id`."""
    safe = re.sub(r"[^a-z0-9_]", "_", case_id.lower())[:40]
    return f"case_{safe}_{uuid.uuid4().hex[:8]}"


def create_table(client: Any, database: str, table: str = "requests") -> None:
    """Create the request-log table of the spec (MergeTree ordered by workspace, time)."""
    columns = ", ".join(f"{_ident(name)} {kind}" for name, kind in REQUEST_LOG_COLUMNS)
    client.command(f"CREATE TABLE IF NOT EXISTS {_ident(database)}.{_ident(table)} ({columns}) "
                   f"ENGINE = MergeTree ORDER BY ({', '.join(REQUEST_LOG_ORDER_BY)})")


def _parse_ts(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "")).replace(tzinfo=UTC)


def load_rows(client: Any, rows: Iterable[dict[str, Any]], *, database: str,
              table: str = "requests", batch_rows: int = BATCH_ROWS) -> int:
    """Insert request-log rows column-wise in batches; return how many were inserted."""
    total = 0
    batch: list[list[Any]] = [[] for _ in COLUMNS]

    def flush() -> None:
        if batch[0]:
            client.insert(table, batch, column_names=list(COLUMNS), database=database,
                          column_oriented=True)
            for column in batch:
                column.clear()

    for number, row in enumerate(rows, 1):
        if set(row) != set(COLUMNS):
            raise InvalidRequestError(f"request-log row {number}: columns {sorted(row)} are not "
                                      f"the spec's {sorted(COLUMNS)}")
        for column, name in zip(batch, COLUMNS, strict=True):
            value = row[name]
            column.append(_parse_ts(value) if name == "ts" else
                          int(value) if name in _INTS else str(value))
        total += 1
        if len(batch[0]) >= batch_rows:
            flush()
    flush()
    return total


def load_world(client: Any, world: World, *, database: str, table: str = "requests") -> int:
    """Create `database` and its request table, load the world's rows; return the row count."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {_ident(database)}")
    create_table(client, database, table)
    return load_rows(client, world.request_rows(), database=database, table=table)


def drop_world(client: Any, database: str) -> None:
    """Drop a world's database and everything in it."""
    client.command(f"DROP DATABASE IF EXISTS {_ident(database)}")


def sandbox_config(database: str, table: str = "requests") -> ClickHouseConfig:
    """Return the connector config reading `database` from the in-process chDB engine."""
    return ClickHouseConfig(interface="chdb", database=database, table=table)


def http_config(base_url: str, database: str, table: str = "requests") -> ClickHouseConfig:
    """Return the connector config reading `database` through `http_routes` at `base_url`."""
    url = urlsplit(base_url)
    return ClickHouseConfig(interface="http", host=url.hostname, port=url.port or 80,
                            proxy_path=url.path.rstrip("/") + "/", password=SecretStr("sandbox"),
                            database=database, table=table)


# -- synthetic traffic ------------------------------------------------------------

_MODELS = {"openai": ["gpt-4.1-mini", "gpt-4o-mini", "gpt-4.1", "o4-mini"],
           "anthropic": ["claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-1"],
           "azure-openai": ["gpt-4o", "gpt-4.1-mini"], "bedrock": ["claude-sonnet-4-6"],
           "google": ["gemini-2.5-flash", "gemini-2.5-pro"]}
_ERRORS = [(429, "provider_rate_limited", 40), (504, "timeout", 20),
           (400, "invalid_request", 15), (503, "provider_unavailable", 10),
           (500, "internal_error", 6), (404, "model_not_found", 4), (401, "invalid_api_key", 3),
           (402, "payment_required", 1), (429, "quota_exceeded", 1)]
_REGIONS = ["us-east-1", "us-west-2", "eu-west-1"]


def synthetic_rows(n: int, *, seed: int, start: datetime, days: float = 30.0,
                   workspaces: int = 50, error_rate: float = 0.02) -> Iterator[dict[str, Any]]:
    """Yield `n` request-log rows over `days` from `start`, the same for the same seed.

    Traffic is skewed across workspaces and providers; a new gateway version
    ships every five days; the first workspace is refused with 402
    payment_required for its last day, so timelines have something to find.
    """
    rng = random.Random(seed)
    names = [f"ws_{i:03d}" for i in range(workspaces)]
    weights = [1 / (i + 1) ** 0.8 for i in range(workspaces)]
    keys = {ws: [f"key_{rng.getrandbits(16):04x}" for _ in range(2)] for ws in names}
    regions = {ws: _REGIONS[i % len(_REGIONS)] for i, ws in enumerate(names)}
    providers = list(_MODELS)
    codes, code_weights = [(s, c) for s, c, _ in _ERRORS], [w for _, _, w in _ERRORS]
    span = timedelta(days=days).total_seconds()
    start = start.astimezone(UTC)
    outage_from = span - 86_400
    for i in range(n):
        offset = (i + rng.random()) * span / n
        ws = rng.choices(names, weights)[0]
        provider = rng.choices(providers, (5, 3, 2, 1, 2))[0]
        status, code = 200, ""
        if ws == names[0] and offset >= outage_from:
            status, code = 402, "payment_required"
        elif rng.random() < error_rate:
            status, code = rng.choices(codes, code_weights)[0]
        ok = status == 200
        yield {"ts": start + timedelta(seconds=offset),
               "request_id": f"req_{rng.getrandbits(80):020x}", "workspace_id": ws,
               "api_key_id": rng.choice(keys[ws]), "provider": provider,
               "model": rng.choice(_MODELS[provider]), "status": status, "error_code": code,
               "latency_ms": int(rng.lognormvariate(7, 0.8)) if ok or status >= 500 else
               rng.randint(3, 40),
               "prompt_tokens": int(rng.lognormvariate(6, 1)) if ok else 0,
               "completion_tokens": int(rng.lognormvariate(5, 1)) if ok else 0,
               "gateway_version": f"2.{10 + int(offset // 432_000)}.0",
               "region": regions[ws]}


# -- ClickHouse HTTP interface over chDB ------------------------------------------

# URL parameters that configure the HTTP exchange, not the query's settings
_TRANSPORT = frozenset({"query", "database", "default_format", "wait_end_of_query", "session_id",
                        "query_id", "compress", "decompress", "enable_http_compression",
                        "send_progress_in_http_headers", "http_headers_progress_interval_ms",
                        "client_protocol_version", "buffer_size", "session_timeout",
                        "session_check", "role", "quota_key", "user", "password"})
_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CODE = re.compile(r"Code: (\d+)")


def _execute(sql: str, fmt: str, params: dict[str, str], settings: Sequence[tuple[str, str]],
             database: str | None) -> bytes:
    conn = chdb.connect(":memory:")  # type: ignore[no-untyped-call]  # a handle of its own: SET and USE stay in this request
    try:
        conn.query("SET readonly = 2")  # reads and per-query settings only, like a read-only user
        for key, value in settings:
            escaped = value.replace("\\", "\\\\").replace("'", "\\'")
            conn.query(f"SET {key} = '{escaped}'")
        if database:
            conn.query(f"USE {_ident(database)}")
        return bytes(conn.query(sql, fmt, params=params).bytes())
    finally:
        conn.close()


async def _endpoint(request: Request) -> Response:
    args = request.query_params
    body = (await request.body()).decode("utf-8", errors="replace")
    sql = "\n".join(part for part in (args.get("query", ""), body) if part.strip()).strip()
    fmt = args.get("default_format", "TabSeparated")
    found = _FORMAT.search(sql)
    if found:
        fmt, sql = found.group(1), sql[:found.start()]
    params = {k[len("param_"):]: v for k, v in args.items() if k.startswith("param_")}
    settings = [(k, v) for k, v in args.items()
                if k not in _TRANSPORT and not k.startswith("param_") and _SETTING.match(k)]
    try:
        out = await asyncio.to_thread(_execute, sql, fmt, params, settings, args.get("database"))
    except Exception as exc:  # the engine's error, sent the way a ClickHouse server sends it
        code = _CODE.search(str(exc))
        return Response(f"{exc}\n", status_code=500, media_type="text/plain", headers={
            "X-ClickHouse-Exception-Code": code.group(1) if code else "1001"})
    return Response(out, headers={"X-ClickHouse-Timezone": "UTC", "X-ClickHouse-Format": fmt})


def http_routes() -> list[BaseRoute]:
    """Return the routes of a ClickHouse HTTP endpoint over the in-process chDB engine."""
    return [Route("/", _endpoint, methods=["GET", "POST"])]
