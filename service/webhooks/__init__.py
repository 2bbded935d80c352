"""Webhook ingress: Zendesk, Intercom and generic ticket events, verified and deduplicated."""
