"""Settings of the Statuspage connector: which status pages to read."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connectors.base import ConnectorConfig


def _http(value: str, what: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError(f"{what} must start with https:// or http://")
    # paths such as /api/v2/summary.json are appended with one "/"
    return value.rstrip("/")


class StatusPageRef(BaseModel):
    """One status page: its public base URL, the provider it covers, an optional manage API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    url: str = Field(max_length=500, description="the page's base URL, e.g. https://status.openai.com")
    provider: str | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9-]{0,31}$",
        description="upstream provider (openai, anthropic, ...); None for the gateway's own page")
    manage_api_key: SecretStr | None = Field(
        None, description="Statuspage manage API key (sent as `Authorization: OAuth <key>`)")
    manage_url: str = Field("https://api.statuspage.io/v1", max_length=500)
    manage_page_id: str | None = Field(None, pattern=r"^[A-Za-z0-9]{1,64}$")

    @field_validator("url")
    @classmethod
    def _page_url(cls, value: str) -> str:
        return _http(value, "url")

    @field_validator("manage_url")
    @classmethod
    def _manage_url(cls, value: str) -> str:
        return _http(value, "manage_url")

    @model_validator(mode="after")
    def _manage_pair(self) -> StatusPageRef:
        if self.manage_api_key is not None and self.manage_page_id is None:
            raise ValueError(f"page {self.name!r}: manage_api_key needs manage_page_id")
        return self

    @property
    def uses_manage_api(self) -> bool:
        """Say whether incidents come from the authenticated manage API."""
        return self.manage_api_key is not None and self.manage_page_id is not None


class StatuspageConfig(ConnectorConfig):
    """The status pages to read: the gateway's own and each upstream provider's."""

    pages: list[StatusPageRef] = Field(default_factory=list, max_length=50)

    def missing(self) -> list[str]:
        """Name required settings that are absent (at least one page)."""
        return [] if self.pages else ["pages"]
