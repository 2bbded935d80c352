"""Metrics and structured logs."""

from core.telemetry.logging import configure_logging, get_logger, log_context, scrub, scrub_text
from core.telemetry.metrics import Metrics, process_metrics

__all__ = [
    "Metrics",
    "configure_logging",
    "get_logger",
    "log_context",
    "process_metrics",
    "scrub",
    "scrub_text",
]
