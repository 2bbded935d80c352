"""Settings of the docs connector."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from connectors.base import ConnectorConfig


class DocsConfig(ConnectorConfig):
    """Where the markdown pages live, where their index is kept, and the public site."""

    root: Path | None = Field(
        None, description="folder (or git checkout) holding the markdown pages")
    index_path: Path | None = Field(
        None, description="SQLite file of the full-text index; None keeps it in memory")
    resync_interval_s: float = Field(
        2.0, ge=0, le=3600,
        description="look for changed pages at most this often (0: before every search)")
    base_url: str | None = Field(
        None, max_length=500, description="public docs site, e.g. https://docs.gatewayco.com")

    @field_validator("base_url")
    @classmethod
    def _http_base(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError("base_url must start with https:// or http://")
        # page paths are appended with one "/", so a trailing one would double it
        return value.rstrip("/")

    def missing(self) -> list[str]:
        """Name required settings that are absent (the pages' root folder)."""
        return ["root"] if self.root is None else []
