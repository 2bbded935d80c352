"""Checkpointers: SQLite by default, PostgreSQL when the database URL says so."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver


@asynccontextmanager
async def open_checkpointer(target: str | Path) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """Open a checkpointer on a SQLite file/`sqlite:///` URL or a `postgresql://` URL."""
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        async with AsyncPostgresSaver.from_conn_string(text) as saver:
            await saver.setup()
            yield saver
        return
    path = text.removeprefix("sqlite:///")
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        yield saver
