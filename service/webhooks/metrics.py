"""Prometheus metrics of webhook ingress, registered once per registry.

    sleuth_webhooks_received_total{source, outcome}   outcome: accepted, duplicate, ignored,
                                                      or the error code of a refusal
    sleuth_webhook_ack_seconds{source, outcome}       time to answer a delivery; outcome:
                                                      accepted, duplicate, ignored, refused
"""

from __future__ import annotations

import threading
import weakref

from prometheus_client import CollectorRegistry, Counter, Histogram

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)
_ANSWERS = frozenset({"accepted", "duplicate", "ignored"})


class WebhookMetrics:
    """Deliveries by source and outcome, and how fast they were answered."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter(
            "sleuth_webhooks_received", "Webhook deliveries by source and outcome (accepted, "
            "duplicate, ignored, or the error code of a refusal).", ["source", "outcome"],
            registry=registry)
        self.ack_seconds = Histogram(
            "sleuth_webhook_ack_seconds", "Time from a webhook delivery's arrival to its answer.",
            ["source", "outcome"], buckets=_BUCKETS, registry=registry)

    def observe(self, source: str, outcome: str, seconds: float) -> None:
        """Count one delivery and its acknowledgement time."""
        self.received.labels(source=source, outcome=outcome).inc()
        answer = outcome if outcome in _ANSWERS else "refused"
        self.ack_seconds.labels(source=source, outcome=answer).observe(seconds)


_LOCK = threading.Lock()
_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, WebhookMetrics] = (
    weakref.WeakKeyDictionary())


def webhook_metrics(registry: CollectorRegistry) -> WebhookMetrics:
    """Return the webhook metrics on `registry`, registering them on first use."""
    found = _BY_REGISTRY.get(registry)
    if found is None:
        with _LOCK:
            found = _BY_REGISTRY.get(registry)
            if found is None:
                found = _BY_REGISTRY[registry] = WebhookMetrics(registry)
    return found
