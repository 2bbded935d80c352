"""Checkpointers: SQLite by default, PostgreSQL when the database URL says so."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

PG_POOL_MAX = 8
PG_WAIT_S = 10.0  # for a connection (the database is down or every connection is busy)


@asynccontextmanager
async def open_checkpointer(target: str | Path) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """Open a checkpointer on a SQLite file/`sqlite:///` URL or a `postgresql://` URL."""
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        # a pool that checks connections, not one connection: a connection the server
        # dropped (restart, failover, pg_terminate_backend) would fail every later call
        pool: AsyncConnectionPool[AsyncConnection[DictRow]] = AsyncConnectionPool(
            text, connection_class=AsyncConnection[DictRow], min_size=1, max_size=PG_POOL_MAX,
            open=False, timeout=PG_WAIT_S, check=AsyncConnectionPool.check_connection,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row})
        await pool.open(wait=True, timeout=PG_WAIT_S)
        try:
            postgres = AsyncPostgresSaver(conn=pool)
            await postgres.setup()
            yield postgres
        finally:
            await pool.close()
        return
    path = text.removeprefix("sqlite:///")
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        yield saver
