"""Settings of the ClickHouse connector, the request-log schema it reads, its parameters."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, Self

from pydantic import AwareDatetime, Field, SecretStr, model_validator

from connectors.base import ConnectorConfig, Params

# Database and table names are put into SQL text (identifiers cannot be bound
# as parameters), so they are only ever taken from settings matching this.
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"

# The request log, column by column, exactly as `spec/case-format.md` defines it.
REQUEST_LOG_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ts", "DateTime64(3, 'UTC')"),
    ("request_id", "String"),
    ("workspace_id", "LowCardinality(String)"),
    ("api_key_id", "String"),
    ("provider", "LowCardinality(String)"),
    ("model", "LowCardinality(String)"),
    ("status", "UInt16"),
    ("error_code", "LowCardinality(String)"),
    ("latency_ms", "UInt32"),
    ("prompt_tokens", "UInt32"),
    ("completion_tokens", "UInt32"),
    ("gateway_version", "LowCardinality(String)"),
    ("region", "LowCardinality(String)"),
)
REQUEST_LOG_ORDER_BY = ("workspace_id", "ts")


class ClickHouseConfig(ConnectorConfig):
    """Where the request log lives: chDB in-process (default) or a ClickHouse HTTP server.

    `interface="chdb"` queries the embedded engine that clickhouse-connect opens
    (`chdb_path` None: the in-memory engine shared by the process). With
    `interface="http"` the connector talks to `host:port` (plus `proxy_path`,
    for a server behind a path prefix) as `username`, which should be a
    read-only user (`readonly=2`, so per-query limits can still be set).
    `row_limit` caps every result (`max_result_rows`); `query_timeout_s` caps
    how long the server may work on one query (`max_execution_time`).
    """

    interface: Literal["chdb", "http"] = "chdb"
    chdb_path: str | None = Field(None, max_length=4_096)
    host: str | None = Field(None, max_length=253, pattern=r"^[A-Za-z0-9.:\[\]_-]+$")
    port: int = Field(8123, ge=1, le=65_535)
    proxy_path: str = Field("", max_length=200, pattern=r"^(/[A-Za-z0-9_.-]+)*/?$")
    username: str = Field("default", max_length=128)
    password: SecretStr | None = None
    secure: bool = False
    database: str = Field("default", pattern=IDENTIFIER)
    table: str = Field("requests", pattern=IDENTIFIER)
    http_clients: int = Field(8, ge=1, le=64, description="HTTP: queries in flight at once")
    row_limit: int = Field(10_000, ge=1, le=1_000_000)
    query_timeout_s: float = Field(10.0, gt=0, le=600)

    def missing(self) -> list[str]:
        """Name required settings that are absent (the host, for the HTTP interface)."""
        if self.interface == "http" and not (self.host or "").strip():
            return ["host"]
        return []

    @property
    def table_ref(self) -> str:
        """Return the quoted `database`.`table` reference (both validated identifiers)."""
        return f"`{self.database}`.`{self.table}`"


# -- operation parameters ----------------------------------------------------
# (kept here, beside the limits they share, so connector.py holds only queries)

WORKSPACE_ID = r"^[A-Za-z0-9_.:-]{1,64}$"
ERROR_CODE = r"^[a-z0-9_]{1,64}$"
LABEL = r"^[A-Za-z0-9_.:+-]{1,64}$"  # a provider name or a gateway version
MAX_WINDOW = timedelta(days=31)
MAX_BUCKETS = 1_500


class Window(Params):
    """A time window: aware datetimes, `until` after `since`, at most 31 days."""

    since: AwareDatetime
    until: AwareDatetime

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.until <= self.since:
            raise ValueError("until must be after since")
        if self.until - self.since > MAX_WINDOW:
            raise ValueError(f"the window may span at most {MAX_WINDOW.days} days")
        return self


class WorkspaceWindow(Window):
    """One workspace in a time window."""

    workspace_id: str = Field(pattern=WORKSPACE_ID)


class ErrorMatch(Params):
    """An error code, a status, or both (at least one)."""

    error_code: str | None = Field(None, pattern=ERROR_CODE)
    status: int | None = Field(None, ge=100, le=599)

    @model_validator(mode="after")
    def _one_given(self) -> Self:
        if self.error_code is None and self.status is None:
            raise ValueError("give error_code, status or both")
        return self


class TimelineParams(WorkspaceWindow):
    """A workspace's window cut into buckets of `bucket_minutes` (at most 1,500 buckets)."""

    bucket_minutes: int = Field(60, ge=1, le=1440)

    @model_validator(mode="after")
    def _bucket_count(self) -> Self:
        count = (self.until - self.since) / timedelta(minutes=self.bucket_minutes)
        if count > MAX_BUCKETS:
            raise ValueError(f"{count:.0f} buckets; use larger buckets (at most {MAX_BUCKETS})")
        return self


class TopErrorsParams(WorkspaceWindow):
    """A workspace's window and how many error groups to list."""

    limit: int = Field(10, ge=1, le=100)


class LatencyParams(WorkspaceWindow):
    """A workspace's window, optionally one provider, and how many provider/model rows."""

    provider: str | None = Field(None, pattern=LABEL)
    limit: int = Field(20, ge=1, le=100)


class FirstOccurrenceParams(WorkspaceWindow, ErrorMatch):
    """When a workspace first (and last) saw an error code or status in a window."""


class SpikeScopeParams(Window, ErrorMatch):
    """How many workspaces saw an error; `workspace_id` marks the requester's."""

    workspace_id: str | None = Field(None, pattern=WORKSPACE_ID)
    limit: int = Field(10, ge=1, le=100)


class VersionParams(Window):
    """Traffic by gateway version, for one workspace or all."""

    workspace_id: str | None = Field(None, pattern=WORKSPACE_ID)
    limit: int = Field(20, ge=1, le=100)


class QuotaParams(Params):
    """A workspace's usage from `period_start` to `until` against a request quota."""

    workspace_id: str = Field(pattern=WORKSPACE_ID)
    period_start: AwareDatetime
    until: AwareDatetime
    quota: int = Field(ge=1, le=10**12)

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.until <= self.period_start:
            raise ValueError("until must be after period_start")
        if self.until - self.period_start > MAX_WINDOW:
            raise ValueError(f"the period may span at most {MAX_WINDOW.days} days")
        return self
