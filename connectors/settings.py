"""Connector settings: one typed section per connector (``SLEUTH_CONNECTOR_<NAME>__<FIELD>``)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.base import ConnectorConfig
from connectors.clickhouse.config import ClickHouseConfig
from connectors.docs.config import DocsConfig
from connectors.github.config import GitHubConfig
from connectors.linear.config import LinearConfig
from connectors.statuspage.config import StatuspageConfig
from connectors.stripe.config import StripeConfig
from core.domain import SourceName


class ConnectorSettings(BaseSettings):
    """Every connector's settings; nothing is read until `load_connector_settings()`."""

    model_config = SettingsConfigDict(
        env_prefix="SLEUTH_CONNECTOR_", env_nested_delimiter="__", env_file=".env",
        env_file_encoding="utf-8", extra="ignore", frozen=True,
    )

    clickhouse: ClickHouseConfig = ClickHouseConfig()
    stripe: StripeConfig = StripeConfig()
    github: GitHubConfig = GitHubConfig()
    linear: LinearConfig = LinearConfig()
    statuspage: StatuspageConfig = StatuspageConfig()
    docs: DocsConfig = DocsConfig()

    def for_source(self, name: SourceName) -> ConnectorConfig:
        """Return the section of connector `name`."""
        config: ConnectorConfig = getattr(self, name)
        return config


def load_connector_settings(env_file: str | Path | None = ".env") -> ConnectorSettings:
    """Read connector settings from the environment and a .env file."""
    return ConnectorSettings(_env_file=env_file)
