"""Pure helpers that turn stored values into what a reviewer reads (no Streamlit, no I/O)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from governance.redaction.vault import PLACEHOLDER, SECRET_KIND

SEVERITY_RANK = {"high": 3, "medium": 2, "low": 1}
LEVEL_RANK = {"financial": 4, "external_write": 3, "customer_visible": 2, "internal": 1}
# Stripe's zero-decimal currencies: their minor unit is the whole unit
ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf",
                          "ugx", "vnd", "vuv", "xaf", "xof", "xpf"})
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]#|<>~$:])")


def money(minor: int, currency: str | None) -> str:
    """Format an amount in minor units, e.g. 49900 usd -> '499.00 USD'."""
    code = (currency or "").lower()
    whole = f"{minor:,}" if code in ZERO_DECIMAL else f"{minor / 100:,.2f}"
    return f"{whole} {code.upper()}".strip()


def duration(seconds: float) -> str:
    """Format a duration for people: '45 s', '12 min', '3 h 05 min', '2 d 4 h'."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def time_left(expires_at: datetime, now: datetime) -> str:
    """Say how long is left before expiry, or that it has expired."""
    left = (expires_at - now).total_seconds()
    if left <= 0:
        return f"expired {duration(-left)} ago"
    return f"{duration(left)} left"


def age(created_at: datetime, now: datetime) -> str:
    """Say how long ago something was created."""
    return f"{duration((now - created_at).total_seconds())} ago"


def md_escape(text: str) -> str:
    """Escape text from tickets and connectors for Markdown (no links, no formatting)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def code_span(text: str) -> str:
    """Return text as a Markdown code span (escaping does not apply inside one)."""
    return "`" + text.replace("`", "'") + "`"


def safe_url(url: str | None) -> str | None:
    """Return the URL when it is http(s) with a host, else None (no javascript: links)."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    # a Markdown link target ends at ")" or a space
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")


def sort_key(severity: str | None, created_at: datetime, level: str,
             expired: bool) -> tuple[int, int, datetime, int]:
    """Order the queue: decidable first, most severe first, then oldest, then most sensitive."""
    return (int(expired), -SEVERITY_RANK.get(severity or "", 0), created_at,
            -LEVEL_RANK.get(level, 0))


def within(now: datetime, expires_at: datetime, window: timedelta) -> bool:
    """Say whether an expiry falls within `window` from now (and has not passed)."""
    return now < expires_at <= now + window


class Masker:
    """Hides a ticket's personal data in other texts, for roles that see it redacted.

    The graph redacts the ticket at intake; the placeholders it used stand for originals
    kept in the vault. Replies, evidence and summaries hold the same values in the clear,
    so the console replaces every known original with its placeholder before showing them.
    """

    def __init__(self, originals: Mapping[str, str], extra: Iterable[str] = ()) -> None:
        pairs = {o: p for p, o in originals.items() if o and len(o) >= 3}
        for value in extra:
            if value and len(value) >= 3 and value not in pairs:
                pairs[value] = "<REDACTED>"
        # longest first, so "Henry Osei" goes before "Henry"
        self._pairs = sorted(pairs.items(), key=lambda kv: -len(kv[0]))

    def __call__(self, text: str) -> str:
        for original, placeholder in self._pairs:
            text = re.sub(re.escape(original), placeholder, text, flags=re.IGNORECASE)
        return text


def placeholders(texts: Iterable[str]) -> set[str]:
    """Return the placeholders (<EMAIL_1>, …) that appear in texts, secrets excepted."""
    found: set[str] = set()
    for text in texts:
        for match in PLACEHOLDER.finditer(text):
            if match.group(1) != SECRET_KIND:
                found.add(match.group(0))
    return found


def restore(text: str, originals: Mapping[str, str]) -> str:
    """Put originals back in place of their placeholders (secrets are never in the map)."""
    return PLACEHOLDER.sub(lambda m: originals.get(m.group(0), m.group(0)), text)


@dataclass(frozen=True)
class EvidenceView:
    """A cited piece of evidence as the reviewer sees it, or why it cannot be shown."""

    source: str
    ref: str
    title: str
    summary: str
    url: str | None
    missing: str | None = None  # set when the citation has nothing to show


def cited_evidence(record: Mapping[str, Any], mask: Callable[[str], str]) -> list[EvidenceView]:
    """Resolve each citation of the diagnosis against the gathered evidence."""
    evidence = record.get("evidence") or []
    diagnosis = record.get("diagnosis") or {}
    degraded = set(record.get("degraded_sources") or [])
    failures = {str(c.get("source")): (c.get("error") or {}) for c in record.get("calls") or []
                if not c.get("ok")}
    views: list[EvidenceView] = []
    for cite in diagnosis.get("cited") or []:
        source, ref = str(cite.get("source")), cite.get("ref")
        match = next((e for e in evidence if e.get("source") == source
                      and (ref is None or e.get("ref") == ref)), None)
        if match is not None:
            views.append(EvidenceView(source, str(match.get("ref")),
                                      mask(str(match.get("title") or "")),
                                      mask(str(match.get("summary") or "")),
                                      safe_url(match.get("url"))))
            continue
        if source in degraded or source in failures:
            error = failures.get(source) or {}
            why = (f"{source} was degraded during the investigation"
                   + (f" ({error.get('kind')}: {error.get('code')})" if error else "")
                   + "; this evidence could not be fetched")
        else:
            why = "cited, but not among the evidence gathered; treat the claim as unsupported"
        views.append(EvidenceView(source, str(ref or "(any)"), "", "", None, missing=why))
    return views


def financial_amount(params: Mapping[str, Any], amount: int | None,
                     evidence: Iterable[Mapping[str, Any]]) -> str | None:
    """Describe the money a financial action moves, from its params or the charge it names."""
    currency = params.get("currency")
    if amount is not None:
        return money(amount, str(currency) if currency else None)
    target = params.get("charge_id") or params.get("invoice_id")
    for item in evidence:
        data = item.get("data") or {}
        if target and item.get("ref") == target and isinstance(data.get("amount"), int):
            left = int(data["amount"]) - int(data.get("amount_refunded") or 0)
            return (f"the whole of {target}: {money(left, data.get('currency'))} "
                    "(no amount given: full refund)")
    if target:
        return f"the whole of {target} (no amount given; the charge is not in the evidence)"
    return None


def timeline_rows(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return graph steps, connector calls and model calls with their durations, in order."""
    steps = [(name, float(ms)) for name, ms in (record.get("timings_ms") or {}).items()
             if not name.startswith("query:")]
    before = [s for s in steps if s[0] in ("intake", "route")]
    after = [s for s in steps if s[0] not in ("intake", "route")]
    rows: list[dict[str, Any]] = [{"kind": "step", "name": n, "ms": ms, "outcome": "ok"}
                                  for n, ms in before]
    seen: dict[str, int] = {}
    for call in record.get("calls") or []:
        name = f"{call.get('source')}.{call.get('operation')}"
        seen[name] = seen.get(name, 0) + 1
        error = call.get("error") or {}
        rows.append({"kind": "connector",
                     "name": name if seen[name] == 1 else f"{name} #{seen[name]}",
                     "ms": float(call.get("duration_ms") or 0),
                     "outcome": "ok" if call.get("ok") else str(error.get("code") or "failed")})
    for tier in record.get("tiers_tried") or []:
        rows.append({"kind": "model", "name": f"model {tier.get('tier')} ({tier.get('model')})",
                     "ms": float(tier.get("latency_ms") or 0),
                     "outcome": str(tier.get("outcome"))})
    rows += [{"kind": "step", "name": n, "ms": ms, "outcome": "ok"} for n, ms in after]
    return rows


def event_text(event: Mapping[str, Any]) -> str:
    """Describe one progress event in a line."""
    if event.get("step") == "gather":
        return (f"{event.get('source')}.{event.get('operation')}: {event.get('outcome')}, "
                f"{event.get('evidence', 0)} evidence, {event.get('ms', '?')} ms")
    return str(event.get("detail") or "")
