"""Settings of the GitHub connector."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator

from connectors.base import ConnectorConfig

# GitHub's own rules: an owner is 1-39 alphanumerics or inner hyphens; a repository
# name is 1-100 of [A-Za-z0-9._-] and is never "." or "..".
REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
# Environment names as the deployments we read use them; quotes, spaces and
# control characters have no business in a query parameter we build.
ENVIRONMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")


def check_environment(value: str) -> str:
    """Return `value` if it is a plausible GitHub environment name, else raise ValueError."""
    if not ENVIRONMENT.match(value) or ".." in value:
        raise ValueError("environment must be 1-100 of letters, digits, '.', '_', '/', '-'")
    return value


class GitHubConfig(ConnectorConfig):
    """Where the GitHub API is, which repository holds the gateway, and its deploy environment."""

    token: SecretStr | None = Field(None, description="token with read access to the repository")
    base_url: str = Field(
        "https://api.github.com", max_length=500,
        description="REST API root; https://HOST/api/v3 for GitHub Enterprise Server")
    repository: str = Field("gatewayco/gateway", description="owner/name of the gateway repository")
    environment: str = Field("production", description="environment whose deployments are read")
    page_size: int = Field(
        100, ge=1, le=100, description="items a page (GitHub's per_page); less means more requests")

    @field_validator("base_url")
    @classmethod
    def _http_base(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("base_url must start with https:// or http://")
        # PyGithub appends paths starting with "/", so a trailing one would double it
        return value.rstrip("/")

    @field_validator("repository")
    @classmethod
    def _owner_name(cls, value: str) -> str:
        if not REPOSITORY.match(value) or value.split("/", 1)[1] in (".", ".."):
            raise ValueError("repository must be owner/name, e.g. gatewayco/gateway")
        return value

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: str) -> str:
        return check_environment(value)

    @property
    def web_url(self) -> str:
        """Return the web root matching `base_url` (pages of objects live there)."""
        if self.base_url.endswith("/api/v3"):  # GitHub Enterprise Server
            return self.base_url.removesuffix("/api/v3")
        # api.github.com, and any stand-in serving github.com data, link to github.com
        return "https://github.com"

    def missing(self) -> list[str]:
        """Name required settings that are absent (the token)."""
        if self.token is None or not self.token.get_secret_value().strip():
            return ["token"]
        return []
