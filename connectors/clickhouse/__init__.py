"""The ClickHouse connector: aggregates of the gateway's request log, read-only."""
