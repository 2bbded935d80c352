"""Read-only connectors: ClickHouse, Stripe, GitHub, Linear, Statuspage, docs."""
