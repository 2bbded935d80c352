"""Intake: validate and redact the ticket, identify the customer, classify the ticket."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from agent.context import AgentContext
from agent.state import CallRecord, InvestigationState
from core.domain import Ticket

# Mail providers whose domain says nothing about the customer.
FREE_MAIL = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "yahoo.com",
    "icloud.com", "me.com", "proton.me", "protonmail.com", "gmx.de", "gmx.net", "web.de",
    "aol.com", "mail.com", "yandex.ru", "qq.com", "163.com", "orange.fr", "free.fr",
})

# Words that suggest a category, in the languages tickets arrive in. Routing is
# deliberately generous: customers often guess the cause wrong, and a playbook
# that does not apply simply finds no supporting signals.
CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    "billing": (
        "invoice", "charge", "charged", "refund", "payment", "paid", "card", "billing",
        "billed", "subscription", "plan", "quota", "credit", "receipt", "402", "price",
        "factura", "cobro", "pago", "tarjeta", "reembolso", "rechnung", "zahlung", "karte",
        "abbuchung", "erstattung", "facture", "paiement", "carte", "remboursement",
        "fattura", "pagamento", "cobrança", "cartão", "請求", "支払", "返金", "扣款", "退款",
    ),
    "errors": (
        "error", "errors", "fail", "failing", "failed", "failure", "broken", "not working",
        "500", "502", "503", "504", "400", "404", "429", "exception", "crash", "down",
        "fehler", "erreur", "échec", "falla", "fallo", "errore", "erro", "エラー", "错误",
    ),
    "auth": (
        "401", "403", "unauthorized", "unauthorised", "api key", "key", "token", "rotate",
        "rotated", "revoked", "forbidden", "invalid_api_key", "clave", "schlüssel", "clé",
        "chiave", "chave", "認証", "密钥",
    ),
    "performance": (
        "slow", "latency", "timeout", "timed out", "time out", "hang", "lento", "langsam",
        "lent", "lenteur", "zeitüberschreitung", "tardanza", "遅い", "超时",
    ),
    "outage": (
        "outage", "incident", "down", "unavailable", "degraded", "status page", "caída",
        "ausfall", "panne", "interruzione", "障害", "故障",
    ),
    "howto": (
        "how do i", "how to", "how can", "where can i", "is it possible", "documentation",
        "docs", "cómo", "wie kann", "comment", "come posso", "como", "どうすれば", "如何",
    ),
}


def classify(ticket: Ticket) -> list[str]:
    """Return the categories a ticket's text suggests (["any"] when none does)."""
    text = f"{ticket.subject}\n{ticket.body}".lower()
    found = []
    for category, words in CATEGORY_WORDS.items():
        for word in words:
            pattern = rf"(?<![\w]){re.escape(word)}(?![\w])" if word.isascii() else re.escape(word)
            if re.search(pattern, text):
                found.append(category)
                break
    return found or ["any"]


def _customer_from(result: dict[str, Any], matched_by: str) -> dict[str, Any] | None:
    evidence = result.get("evidence") or []
    if not evidence:
        return None
    data = evidence[0].get("data", {})
    metadata = data.get("metadata") or {}
    return {
        "id": evidence[0]["ref"],
        "email": data.get("email"),
        "name": data.get("name"),
        "workspace_id": data.get("workspace_id") or metadata.get("workspace_id"),
        "matched_by": matched_by,
    }


async def intake(state: InvestigationState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Redact the ticket, find the customer in Stripe, classify, set the time window."""
    started = time.perf_counter()
    ctx = runtime.context
    write = get_stream_writer()
    raw = Ticket.model_validate(state["ticket"])
    iid = state["investigation_id"]
    ticket = raw.model_copy(update={
        "subject": ctx.redact(raw.subject, investigation_id=iid),
        "body": ctx.redact(raw.body, investigation_id=iid),
    })
    write({"step": "intake", "detail": f"ticket {ticket.id} from {ticket.source}"})
    calls: list[CallRecord] = []
    customer = None
    stripe = ctx.connectors.get("stripe")
    email = raw.requester.email.strip().lower()
    domain = email.rsplit("@", 1)[-1] if "@" in email else ""
    lookups: list[tuple[str, dict[str, Any]]] = [("email", {"email": email})]
    if domain and domain not in FREE_MAIL:
        lookups.append(("domain", {"domain": domain}))
    for matched_by, params in lookups:
        if stripe is None or customer is not None:
            break
        result = await stripe.run("find_customer", params, budget_s=ctx.settings.call_budget_s)
        dumped = result.model_dump(mode="json")
        calls.append({"key": f"intake.customer_by_{matched_by}", "round": 0,
                      "uses": [f"intake.customer_by_{matched_by}"], "result": dumped})
        customer = _customer_from(dumped, matched_by)
    categories = classify(ticket)
    created = ticket.created_at
    window = {
        "since": (created - timedelta(hours=ctx.settings.window_before_hours)).isoformat(),
        "until": (created + timedelta(minutes=ctx.settings.window_after_minutes)).isoformat(),
    }
    who = f"{customer['id']} ({customer['workspace_id']}) by {customer['matched_by']}" \
        if customer else "no Stripe customer found"
    write({"step": "intake", "detail": f"customer: {who}; categories: {', '.join(categories)}"})
    ctx.audit("ticket_received", iid, {
        "ticket_id": ticket.id, "source": ticket.source, "created_at": created.isoformat(),
        "subject": ticket.subject, "body": ticket.body,
        "requester": ctx.redact(raw.requester.email, investigation_id=iid),
        "customer": customer and {"id": customer["id"], "workspace_id": customer["workspace_id"],
                                  "matched_by": customer["matched_by"]},
        "categories": categories})
    return {
        "ticket": ticket.model_dump(mode="json"), "customer": customer,
        "categories": categories, "window": window, "calls": calls, "round": 0,
        "timings": {"intake": (time.perf_counter() - started) * 1000},
    }
