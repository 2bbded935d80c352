"""Settings of the Linear connector."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from connectors.base import ConnectorConfig


class LinearConfig(ConnectorConfig):
    """Where Linear's GraphQL API is, the API key, and an optional team to search in."""

    api_key: SecretStr | None = Field(
        None, description="personal API key (sent as `Authorization: <key>`)")
    url: str = Field("https://api.linear.app/graphql", max_length=500,
                     description="GraphQL endpoint")
    team_key: str | None = Field(
        None, pattern=r"^[A-Z][A-Z0-9]{0,9}$", description="limit searches to one team, e.g. GW")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("url must start with https:// or http://")
        return value

    def missing(self) -> list[str]:
        """Name required settings that are absent (the API key)."""
        return ["api_key"] if self.api_key is None else []
