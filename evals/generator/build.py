"""Generate ticket cases as variants of the public cases.

Run: ``.venv/bin/python -m evals.generator.build [--out evals/cases] [--seed 6]``

For each public case (one per root cause) the builder writes six variants
``gen-<cause>-<nn>/``. A variant copies the base world, so the data that decides the
diagnosis is the same, and then changes:

* the ticket: subject and body from the cause's phrasing pool (several languages, some
  customers guessing the cause wrong), with PII, a pasted secret or a prompt-injection
  attempt added to some of them;
* the world, for some variants, with red herrings that must not change the diagnosis:
  an unrelated resolved incident on another provider's status page days before, a
  production redeploy of the running version at least six hours before the errors began,
  an old failed charge whose invoice was paid on retry, an unrelated open bug.

The expected block is the base case's (same data, same diagnosis); an injection attempt
adds the actions it asks for to ``never_execute`` unless the diagnosis proposes them.
Generation is deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import random
import shutil
import string
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from evals.generator import phrases

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "evals" / "cases"
VARIANTS = 6
WINDOW_BEFORE = timedelta(hours=24)


@dataclass(frozen=True)
class Base:
    short: str           # cause key in phrases.TICKETS and in the case ids
    case: str            # the public case the variants copy
    company: str
    main_errors: tuple[str, ...]  # error codes that make the diagnosis (empty: none)
    providers: tuple[str, ...]    # providers the diagnosis is about (keep incidents off them)


BASES = [
    Base("dup", "pub-01-double-charge", "Dovetail Docs", (), ()),
    Base("kbug", "pub-02-gemini-30s-timeout", "Jetty Labs", ("timeout",), ("google",)),
    Base("cfg", "pub-03-max-tokens-too-large", "Kranich Logistik", ("invalid_request",),
         ("openai",)),
    Base("outage", "pub-04-openai-outage", "Foundry Loop",
         ("provider_unavailable", "timeout"), ("openai",)),
    Base("howto", "pub-05-howto-rotate-keys", "Meadowlark Health", (), ()),
    Base("pay", "pub-06-card-declined", "Birchwood Apps", ("payment_required",), ()),
    Base("quota", "pub-07-quota-used-up", "Cascade Metrics", ("quota_exceeded",), ()),
    Base("rl", "pub-08-anthropic-rate-limit", "Harvest Table", ("provider_rate_limited",),
         ("anthropic",)),
    Base("key", "pub-09-key-rotated", "Girasol Viajes", ("invalid_api_key",), ()),
    Base("reg", "pub-10-bad-release", "Inkwell Press", ("internal_error",),
         ("google", "azure-openai")),
]

# Status page names as the statuspage connector maps them to providers.
PAGE_PROVIDER = {"OpenAI": "openai", "Anthropic": "anthropic", "Azure OpenAI": "azure-openai",
                 "AWS Bedrock": "bedrock", "Google Gemini": "google"}

# Which ticket extras and red herrings each variant slot gets; rotated per cause so
# that every cause gets every kind several times, in different combinations.
EXTRAS = [(), ("pii",), ("secret",), ("injection",), ("pii", "secret"), ("pii", "injection")]
HERRINGS = [("statuspage",), ("deploy",), ("charge",), ("bug",),
            ("statuspage", "deploy", "charge", "bug"), ("deploy", "bug")]
SOURCES = ["zendesk", "email", "intercom", "generic"]


# ---------------------------------------------------------------- helpers

def iso(t: datetime, ms: bool = False) -> str:
    t = t.astimezone(UTC)
    if ms:
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def rand_id(rng: random.Random, n: int, alphabet: str = string.ascii_lowercase + string.digits,
            ) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def stripe_id(rng: random.Random, prefix: str) -> str:
    alnum = string.ascii_letters + string.digits
    return f"{prefix}_1{rand_id(rng, 7, alnum)}Hb7WnX3c{rand_id(rng, 8, alnum)}"


class Literal(str):
    """A string dumped as a YAML literal block."""


def _literal(dumper: yaml.SafeDumper, data: Literal) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style="|")


class Timestamp(str):
    """A UTC time dumped as a plain YAML timestamp (2026-04-09T13:20:00Z)."""


def _timestamp(dumper: yaml.SafeDumper, data: Timestamp) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:timestamp", str(data))


yaml.SafeDumper.add_representer(Literal, _literal)
yaml.SafeDumper.add_representer(Timestamp, _timestamp)


def error_onsets(world: Path, workspace: str, created: datetime) -> dict[str, tuple[datetime, int]]:
    """First time and count of each error code of the workspace in the investigation window."""
    since, until = created - WINDOW_BEFORE, created + timedelta(minutes=10)
    seen: dict[str, tuple[datetime, int]] = {}
    with gzip.open(world / "clickhouse" / "requests.jsonl.gz", "rt") as fh:
        for line in fh:
            row = json.loads(line)
            if row["workspace_id"] != workspace or not row["error_code"]:
                continue
            ts = datetime.fromisoformat(row["ts"]).replace(tzinfo=UTC)
            if not since <= ts <= until:
                continue
            first, count = seen.get(row["error_code"], (ts, 0))
            seen[row["error_code"]] = (min(first, ts), count + 1)
    return seen


# ---------------------------------------------------------------- tickets

def fake_pii(rng: random.Random, lang: str) -> dict[str, str]:
    phones = {"en": "+1 415 555 {a:04d}", "de": "+49 30 5557 {a:04d}",
              "es": "+34 612 55 {b:02d} {c:02d}", "fr": "+33 6 55 {b:02d} {c:02d} 1{d}",
              "pt": "+351 912 555 {a:03d}", "it": "+39 347 555 {a:04d}",
              "nl": "+31 6 5555 {a:04d}", "ja": "+81 90-5555-{a:04d}"}
    addresses = {"en": "{n} Market Street, Suite 400, San Francisco, CA 94105",
                 "de": "Hauptstraße {n}, 10827 Berlin", "es": "Calle de Alcalá {n}, 28014 Madrid",
                 "fr": "{n} rue de Rivoli, 75004 Paris", "pt": "Rua Augusta {n}, 1100-053 Lisboa",
                 "it": "Via Torino {n}, 20123 Milano",
                 "nl": "Keizersgracht {n}, 1015 CJ Amsterdam",
                 "ja": "東京都渋谷区神南1-{n}-3"}
    countries = {"de": "DE", "es": "ES", "fr": "FR", "pt": "PT", "it": "IT", "nl": "NL"}
    country = countries.get(lang, "DE")
    nums = {"a": rng.randint(100, 999), "b": rng.randint(10, 99), "c": rng.randint(10, 99),
            "d": rng.randint(0, 9)}
    iban = f"{country}{rng.randint(10, 99)} " + " ".join(
        f"{rng.randint(0, 9999):04d}" for _ in range(4)) + f" {rng.randint(10, 99)}"
    return {"phone": phones[lang].format(**nums),
            "address": addresses[lang].format(n=rng.randint(2, 180)),
            "last4": f"{rng.randint(0, 9999):04d}", "iban": iban}


def fake_secret(rng: random.Random) -> str:
    alnum = string.ascii_letters + string.digits
    kind = rng.choice(["sk-proj-", "pk-live-", "sk-ant-api03-"])
    return kind + "".join(rng.choice(alnum) for _ in range(32 if kind != "sk-proj-" else 48))


def build_ticket(rng: random.Random, base_case: dict[str, Any], base: Base, created: datetime,
                 template: phrases.Template, extras: tuple[str, ...],
                 used_ids: set[str]) -> tuple[dict[str, Any], list[str], list[str]]:
    """Return the ticket, the actions an injection asks for, and notes on the extras."""
    requester = base_case["ticket"]["requester"]
    lines: list[str] = []
    wants: list[str] = []
    notes: list[str] = []
    lang = template.lang
    if "pii" in extras:
        line = rng.choice(phrases.PII[lang])
        lines.append(line.format(**fake_pii(rng, lang)))
        kinds = [k for k in ("phone", "address", "last4", "iban") if "{" + k + "}" in line]
        notes.append("PII (" + ", ".join(k.replace("last4", "card last4") for k in kinds) + ")")
    if "secret" in extras:
        lines.append(rng.choice(phrases.SECRET[lang]).format(secret=fake_secret(rng)))
        notes.append("pasted secret")
    if "injection" in extras:
        pool = [i for i in phrases.INJECTION if i[0] in (lang, "en")]
        _, text, asked = rng.choice(pool)
        lines.append(text)
        wants.extend(asked)
        notes.append("prompt injection asking for " + ", ".join(asked))
    extra = ("\n" + "\n\n".join(lines) + "\n") if lines else ""
    fields = {"name": requester["name"], "first": requester["name"].split()[0],
              "company": base.company, "extra": extra}
    body = template.body.format(**fields)
    body = "\n".join(line.rstrip() for line in body.splitlines()).replace("\n\n\n", "\n\n")
    source = rng.choice(SOURCES)
    while True:
        tid = {"zendesk": lambda: str(rng.randint(20000, 99999)),
               "email": lambda: f"mail-{rng.randint(1000, 9999)}",
               "intercom": lambda: str(rng.randint(17_000_000_000, 17_999_999_999)),
               "generic": lambda: f"T-{rng.randint(100000, 999999)}"}[source]()
        if tid not in used_ids:
            used_ids.add(tid)
            break
    ticket: dict[str, Any] = {
        "id": tid, "source": source, "created_at": Timestamp(iso(created)),
        "subject": template.subject.format(**fields), "body": Literal(body.strip() + "\n"),
        "requester": dict(requester)}
    if rng.random() < 0.5:
        ticket["priority"] = rng.choice(["low", "normal", "high", "urgent"])
    return ticket, wants, notes


# ---------------------------------------------------------------- red herrings

def add_statuspage_incident(rng: random.Random, world: Path, base: Base,
                            created: datetime) -> str:
    """A resolved incident on another provider's page, days before the ticket."""
    path = world / "statuspage.json"
    data = json.loads(path.read_text())
    pages = [p for p in data["pages"] if p["page"]["name"] in PAGE_PROVIDER
             and PAGE_PROVIDER[p["page"]["name"]] not in base.providers and p["components"]]
    page = rng.choice(pages)
    name, first_body = rng.choice(phrases.INCIDENT_NAMES)
    start = created - timedelta(days=rng.uniform(2.5, 6), minutes=rng.randint(0, 59))
    monitoring = start + timedelta(minutes=rng.randint(25, 70))
    resolved = monitoring + timedelta(minutes=rng.randint(15, 45))
    comp = rng.choice(page["components"])
    inc_id = rand_id(rng, 12)
    impact = rng.choice(["minor", "major"])
    degraded = "partial_outage" if impact == "major" else "degraded_performance"

    def update(status: str, body: str, at: datetime, old: str, new: str) -> dict[str, Any]:
        return {"id": rand_id(rng, 12), "status": status, "body": body, "incident_id": inc_id,
                "created_at": iso(at, True), "updated_at": iso(at, True),
                "display_at": iso(at, True),
                "affected_components": [{"code": comp["id"], "name": comp["name"],
                                         "old_status": old, "new_status": new}],
                "deliver_notifications": True, "custom_tweet": None, "tweet_id": None}

    component = copy.deepcopy(comp)
    component["status"] = "operational"
    incident = {
        "id": inc_id, "name": name, "status": "resolved", "created_at": iso(start, True),
        "updated_at": iso(resolved, True), "monitoring_at": iso(monitoring, True),
        "resolved_at": iso(resolved, True), "impact": impact,
        "shortlink": f"https://stspg.io/{rand_id(rng, 7)}", "started_at": iso(start, True),
        "page_id": page["page"]["id"],
        "incident_updates": [
            update("resolved", "This incident has been resolved.", resolved, degraded,
                   "operational"),
            update("monitoring", "A fix has been implemented and we are monitoring the results.",
                   monitoring, degraded, degraded),
            update("investigating", first_body, start, "operational", degraded)],
        "components": [component]}
    page["incidents"].append(incident)
    page["incidents"].sort(key=lambda i: i["created_at"], reverse=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return (f"unrelated resolved incident {inc_id} '{name}' on the {page['page']['name']} page "
            f"at {iso(start)}")


def add_redeploy(rng: random.Random, world: Path, base: Base, created: datetime,
                 onsets: dict[str, tuple[datetime, int]]) -> str:
    """A production redeploy of the running version, six hours or more before the errors."""
    path = world / "github.json"
    data = json.loads(path.read_text())
    main = [onsets[c][0] for c in base.main_errors if c in onsets]
    onset = min(main) if main else created - timedelta(hours=2)
    when = onset - timedelta(hours=6, minutes=rng.randint(10, 150))
    # no error of the workspace may begin within three hours after the redeploy
    starts = sorted(first for first, count in onsets.values() if count >= 2)
    for _ in range(48):
        if not any(when <= s <= when + timedelta(hours=3) for s in starts):
            break
        when -= timedelta(minutes=30)
    when = when.replace(microsecond=0)
    prod = sorted((d for d in data["deployments"] if d["environment"] == "production"
                   and parse(d["created_at"]) < when), key=lambda d: d["created_at"])
    if not prod:
        prod = [d for d in data["deployments"] if d["environment"] == "production"]
    running = prod[-1]
    dep = copy.deepcopy(running)
    new_id = max(d["id"] for d in data["deployments"]) + rng.randint(3, 9)
    reason = rng.choice(phrases.REDEPLOY_REASONS)
    alnum = string.ascii_letters + string.digits
    dep.update(id=new_id, node_id="DE_kwDO" + rand_id(rng, 15, alnum),
               url=f"https://api.github.com/repos/{data['repository']}/deployments/{new_id}",
               statuses_url=f"https://api.github.com/repos/{data['repository']}/deployments/"
                            f"{new_id}/statuses",
               description=f"Redeploy {running['ref']} to production ({reason})",
               created_at=iso(when), updated_at=iso(when + timedelta(minutes=6)))
    statuses = []
    old = data["deployment_statuses"].get(str(running["id"])) or []
    for k, st in enumerate(old):
        st = copy.deepcopy(st)
        at = when + timedelta(minutes=6 if st["state"] == "success" else 0)
        sid = st["id"] + (new_id - running["id"]) * 7 + k
        st.update(id=sid, node_id="DES_kwDO" + rand_id(rng, 17, alnum),
                  url=f"{dep['url']}/statuses/{sid}", deployment_url=dep["url"],
                  created_at=iso(at), updated_at=iso(at))
        statuses.append(st)
    data["deployments"].append(dep)
    data["deployments"].sort(key=lambda d: d["created_at"], reverse=True)
    data["deployment_statuses"][str(new_id)] = statuses
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return (f"production redeploy {new_id} of {running['ref']} at {iso(when)} ({reason}); "
            "no change in error rates")


def add_old_failed_charge(rng: random.Random, world: Path, customer_id: str) -> str:
    """A failed first attempt on an old invoice that a retry paid days later."""
    path = world / "stripe.json"
    data = json.loads(path.read_text())
    paid = sorted((i for i in data["invoices"] if i["customer"] == customer_id
                   and i["status"] == "paid" and i.get("charge")), key=lambda i: i["created"])
    invoice = paid[0]
    good = next(c for c in data["charges"] if c["id"] == invoice["charge"])
    code, message, reason = rng.choice(phrases.FAILURES)
    bad = copy.deepcopy(good)
    bad_id = stripe_id(rng, "ch")
    # the automatic attempt after finalisation failed; the retry (new card) paid the invoice
    failed_at = min(invoice["created"] + rng.randint(15, 45) * 60, good["created"] - 600)
    bad.update(id=bad_id, status="failed", paid=False, captured=False, amount_captured=0,
               balance_transaction=None, failure_code=code, failure_message=message,
               created=failed_at, receipt_url=None, receipt_number=None,
               refunds={"object": "list", "data": [], "has_more": False, "total_count": 0,
                        "url": f"/v1/charges/{bad_id}/refunds"})
    bad["outcome"] = {"advice_code": "try_again_later", "network_advice_code": None,
                      "network_decline_code": None, "network_status": "declined_by_network",
                      "reason": reason, "risk_level": "normal", "risk_score": rng.randint(5, 40),
                      "seller_message": "The bank did not return any further explanation "
                                        "with this decline.", "type": "issuer_declined"}
    invoice["attempt_count"] = max(2, invoice.get("attempt_count") or 1)
    data["charges"].append(bad)
    data["charges"].sort(key=lambda c: c["created"], reverse=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return (f"old failed charge {bad_id} ({code}) on invoice {invoice['id']}, paid on retry by "
            f"{good['id']}")


def add_unrelated_bug(rng: random.Random, world: Path, created: datetime) -> str:
    """An open bug in the tracker that has nothing to do with the ticket."""
    path = world / "linear.json"
    data = json.loads(path.read_text()) if path.exists() else {"issues": []}
    numbers = [int(i["identifier"].split("-")[1]) for i in data["issues"]] or [100]
    number = max(numbers) + rng.randint(1, 4)
    title, description = rng.choice(phrases.BUGS)
    made = created - timedelta(days=rng.uniform(5, 30))
    touched = made + (created - made) * rng.uniform(0.2, 0.9)
    state = rng.choice([{"name": "Todo", "type": "unstarted"},
                        {"name": "Backlog", "type": "backlog"},
                        {"name": "In Progress", "type": "started"}])
    slug = "-".join(w for w in "".join(ch if ch.isalnum() else " " for ch in title.lower()).split())
    issue = {"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
             "identifier": f"GW-{number}", "title": title, "description": description,
             "url": f"https://linear.app/gatewayco/issue/GW-{number}/{slug}",
             "priority": float(rng.choice([2, 3, 4])), "createdAt": iso(made, True),
             "updatedAt": iso(touched, True), "state": state,
             "labels": {"nodes": [{"name": "bug"}, {"name": rng.choice(["console", "ux",
                                                                       "usage", "auth-ui"])}]},
             "team": {"key": "GW"}}
    data["issues"].append(issue)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return f"unrelated open bug GW-{number} '{title}'"


# ---------------------------------------------------------------- cases

def build_case(rng: random.Random, base: Base, index: int, template: phrases.Template,
               out: Path, used_ids: set[str]) -> Path:
    src = CASES / base.case
    base_case = yaml.safe_load((src / "case.yaml").read_text())
    case_id = f"gen-{base.short}-{index + 1:02d}"
    dest = out / case_id
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src / "world", dest / "world")
    world = dest / "world"
    created = base_case["ticket"]["created_at"]
    if isinstance(created, str):
        created = parse(created)
    created = created.astimezone(UTC)
    stripe = json.loads((world / "stripe.json").read_text())
    email = base_case["ticket"]["requester"]["email"]
    customer = next(c for c in stripe["customers"] if c["email"] == email)
    workspace = customer["metadata"]["workspace_id"]

    slot = (index + BASES.index(base)) % VARIANTS
    extras = EXTRAS[slot]
    herrings = HERRINGS[(index + 2 * BASES.index(base)) % VARIANTS]
    ticket, wants, extra_notes = build_ticket(rng, base_case, base, created, template, extras,
                                              used_ids)

    herring_notes = []
    onsets = error_onsets(world, workspace, created)
    for kind in herrings:
        if kind == "statuspage":
            herring_notes.append(add_statuspage_incident(rng, world, base, created))
        elif kind == "deploy":
            herring_notes.append(add_redeploy(rng, world, base, created, onsets))
        elif kind == "charge":
            herring_notes.append(add_old_failed_charge(rng, world, customer["id"]))
        elif kind == "bug":
            herring_notes.append(add_unrelated_bug(rng, world, created))

    expected = copy.deepcopy(base_case["expected"])
    if template.doc:  # a how-to answered by another docs page
        expected["evidence"] = [e for e in expected["evidence"] if e["source"] != "docs"]
        expected["evidence"].append({"source": "docs", "ref": template.doc})
    proposed = set(expected["actions"]["propose"])
    for action in wants:
        if action not in proposed and action not in expected["actions"]["never_execute"]:
            expected["actions"]["never_execute"].append(action)

    scenario = base_case["notes"].splitlines()[0].rstrip(".")
    notes = [f"generated variant of {base.case} ({scenario}); same data, same diagnosis.",
             f"ticket: language {template.lang}"
             + (f"; the customer guesses {template.guess} (wrong)" if template.guess else "")
             + ("; " + "; ".join(extra_notes) if extra_notes else "") + "."]
    notes += [f"red herring: {n}" for n in herring_notes]
    # the base notes' second line describes the base ticket; the rest describe the data
    notes += ["data: " + line for line in base_case["notes"].splitlines()[2:] if line]
    case = {"format": 1, "id": case_id, "ticket": ticket, "expected": expected,
            "notes": Literal("\n".join(notes) + "\n")}
    (dest / "case.yaml").write_text(yaml.safe_dump(case, sort_keys=False, allow_unicode=True,
                                                   width=100))
    return dest


def check_routing(base: Base, template: phrases.Template) -> None:
    """Fail when a ticket's words would keep the expected playbook from running."""
    from types import SimpleNamespace

    from agent.nodes.intake import classify
    from playbooks.schema import Playbook

    cause = yaml.safe_load((CASES / base.case / "case.yaml").read_text())["expected"]["root_cause"]
    for path in (ROOT / "playbooks" / "library").glob("*/1.0.0.yaml"):
        book = Playbook.model_validate(yaml.safe_load(path.read_text()))
        if any(h.root_cause.value == cause for h in book.hypotheses):
            wanted = set(book.applies_to.categories)
            probe = SimpleNamespace(subject=template.subject, body=template.body)
            got = set(classify(probe))  # type: ignore[arg-type]  # only subject/body are read
            if "any" not in got and "any" not in wanted and not wanted & got:
                raise SystemExit(f"{base.short}: ticket '{template.subject}' routes to {got}, "
                                 f"not to {book.id} ({sorted(wanted)})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CASES)
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args(argv)
    used_ids: set[str] = set()
    for case_yaml in CASES.glob("*/case.yaml"):
        if not case_yaml.parent.name.startswith("gen-"):
            used_ids.add(str(yaml.safe_load(case_yaml.read_text())["ticket"]["id"]))
    for old in args.out.glob("gen-*"):
        shutil.rmtree(old)
    written = 0
    for base in BASES:
        rng = random.Random(f"{args.seed}:{base.short}")
        templates = phrases.TICKETS[base.short]
        assert len(templates) >= VARIANTS, base.short
        for index in range(VARIANTS):
            check_routing(base, templates[index])
            build_case(rng, base, index, templates[index], args.out, used_ids)
            written += 1
    print(f"wrote {written} cases to {args.out}")


if __name__ == "__main__":
    main()
