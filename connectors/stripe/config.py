"""Settings of the Stripe connector."""

from __future__ import annotations

from pydantic import Field, SecretStr

from connectors.base import ConnectorConfig


class StripeConfig(ConnectorConfig):
    """How to reach Stripe's API, read-only.

    `api_key` is expected to be a *restricted* key (`rk_…`) with read-only
    permissions on customers, subscriptions, invoices, charges and refunds, and
    nothing else: the connector never writes, and a leaked read-only key cannot
    move money. `base_url` is None for Stripe's own API and is set only to point
    at the sandbox. `api_version` pins the `Stripe-Version` header (None: the
    SDK's default).
    """

    api_key: SecretStr | None = None
    base_url: str | None = Field(None, max_length=2_000)
    api_version: str | None = Field(None, max_length=64)

    def missing(self) -> list[str]:
        """Name required settings that are absent (the API key)."""
        if self.api_key is None or not self.api_key.get_secret_value().strip():
            return ["api_key"]
        return []
