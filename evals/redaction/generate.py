"""Generate evals/redaction/corpus.jsonl: labeled tickets, log lines and evidence (deterministic).

Run `python -m evals.redaction.generate` after editing a template; the jsonl is committed.
Slots look like [[EMAIL]], [[PHONE:DE]], [[SECRET:stripe]], [[=PHONE|+1 (415) 555-0132]]
(labeled) or [[neg:req]]
(realistic values that must survive redaction: ids, versions, dates, amounts, order numbers).
"""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Callable
from pathlib import Path

import phonenumbers
import yaml

from evals.redaction.templates import EVIDENCE, HOLDOUT, LOGS, TICKETS

CORPUS = Path(__file__).with_name("corpus.jsonl")
CASES = Path(__file__).resolve().parents[1] / "cases"
# what a human annotator marked in the eval cases' tickets besides the requester's name and
# address (which come from the case's own requester field)
CASE_SECRETS = {"pub-09-key-rotated": ["pk-live-Vzn8ZKZNsSZq1J1YIsK7wU7c5qnPEqkD"]}
SLOT = re.compile(r"\[\[([A-Za-z_]+)(?::([A-Za-z0-9_]+))?\]\]|\[\[=([A-Z_]+)\|([^\]]+)\]\]")
HEX = "0123456789abcdef"
ALNUM = string.ascii_letters + string.digits

FIRST = {
    "en": ["Emily", "James", "Olivia", "Noah", "Sarah", "Daniel", "Priya", "Tom"],
    "de": ["Jürgen", "Anna", "Lukas", "Sabine", "Felix", "Katrin", "Stefan", "Lea"],
    "es": ["Javier", "Lucía", "Carmen", "Alejandro", "Marta", "Diego", "Elena", "Pablo"],
    "fr": ["Camille", "Julien", "Chloé", "Mathieu", "Élodie", "Nicolas", "Manon", "Hugo"],
    "pt": ["João", "Beatriz", "Rafael", "Mariana", "Tiago", "Inês", "Lucas", "Fernanda"],
    "it": ["Giulia", "Marco", "Francesca", "Luca", "Chiara", "Matteo", "Sara", "Davide"],
    "nl": ["Sanne", "Daan", "Femke", "Bram", "Lotte", "Joris", "Eva", "Thijs"],
}
LAST = {
    "en": ["Walker", "Thompson", "Patel", "O'Brien", "Harris", "Clarke", "Nguyen", "Baker"],
    "de": ["Müller", "Schmidt", "Becker", "Hoffmann", "Wagner", "Schulz", "Krüger", "Vogel"],
    "es": ["Ortega", "García", "Fernández", "López", "Martínez", "Ruiz", "Navarro", "Castillo"],
    "fr": ["Dupont", "Lefèvre", "Moreau", "Girard", "Bernard", "Rousseau", "Lambert", "Faure"],
    "pt": ["Silva", "Santos", "Oliveira", "Costa", "Pereira", "Almeida", "Ferreira", "Rocha"],
    "it": ["Rossi", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco", "Conti"],
    "nl": ["de Vries", "Jansen", "Bakker", "Visser", "Smit", "Mulder", "de Boer", "Bos"],
}
DOMAINS = {
    "en": ["northwind.io", "acmecorp.com", "brightpath.co.uk", "gmail.com", "fastmail.com"],
    "de": ["acme-logistik.de", "kanzlei-weber.de", "gmx.de", "posteo.de", "reisebuero.at"],
    "es": ["girasolviajes.es", "tiendaluna.com.mx", "gmail.com", "bodegas-ruiz.es"],
    "fr": ["boulangerie-dupont.fr", "orange.fr", "atelier-lumiere.fr", "free.fr"],
    "pt": ["lojaverde.com.br", "sapo.pt", "uol.com.br", "padaria-central.pt"],
    "it": ["studio-rossi.it", "libero.it", "gelateria-conti.it", "pec.it"],
    "nl": ["bakkerij-jansen.nl", "ziggo.nl", "fietsenwinkel.be", "kpnmail.nl"],
}
REGIONS = {"en": ["US", "GB", "IE"], "de": ["DE", "AT", "CH"], "es": ["ES", "MX"],
           "fr": ["FR", "BE", "CH"], "pt": ["PT", "BR"], "it": ["IT"], "nl": ["NL", "BE"]}
IBAN_COUNTRIES = {"en": ["GB", "IE"], "de": ["DE", "AT", "CH"], "es": ["ES"],
                  "fr": ["FR", "BE"], "pt": ["PT"], "it": ["IT"], "nl": ["NL", "BE"]}
# BBAN shapes: n digits, a upper letters, c alphanumerics
BBAN = {"DE": "18n", "AT": "16n", "CH": "5n12n", "ES": "20n", "FR": "10n11n2n", "BE": "12n",
        "PT": "21n", "IT": "1a10n12n", "NL": "4a10n", "GB": "4a14n", "IE": "4a14n"}


class Gen:
    """Random realistic values, one instance per snippet language."""

    def __init__(self, rng: random.Random, lang: str) -> None:
        self.rng, self.lang = rng, lang
        self.first = rng.choice(FIRST[lang])
        self.last = rng.choice(LAST[lang])

    def pick(self, items: list[str]) -> str:
        return self.rng.choice(items)

    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    # -- labeled ---------------------------------------------------------------------------
    def person(self, variant: str | None) -> str:
        if variant == "first":
            return self.first
        if variant == "other":
            return f"{self.pick(FIRST[self.lang])} {self.pick(LAST[self.lang])}"
        return f"{self.first} {self.last}"

    def email(self, variant: str | None) -> str:
        first = self.first.lower().replace("é", "e").replace("è", "e").replace("ç", "c")
        last = self.last.lower().replace(" ", "").replace("'", "").replace("é", "e")
        if self.lang == "de" and self.rng.random() < 0.5:
            first, last = first.replace("ü", "ue"), last.replace("ü", "ue")
        local = self.pick([f"{first}.{last}", f"{first[0]}{last}", f"{first}",
                           f"{first}.{last}+support", f"{last}.{first[0]}", "facturacion",
                           "billing", "ops-team", f"{first}_{last}{self.rng.randint(1, 99)}"])
        if variant == "upper":
            local = local.title()
        return f"{local}@{self.pick(DOMAINS[self.lang])}"

    def phone(self, variant: str | None) -> str:
        region = variant if variant and len(variant) == 2 else self.pick(REGIONS[self.lang])
        kind = self.pick(["fixed", "mobile"])
        number = _random_number(self.rng, region, kind)
        fmt = self.pick(["intl", "intl", "national", "national", "e164", "special"])
        if variant in ("intl", "national", "e164", "special"):
            fmt = variant
        intl = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        if fmt == "intl":
            return intl
        if fmt == "national":
            return national
        if fmt == "e164":
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        code, _, rest = intl.partition(" ")
        if region in ("DE", "AT", "CH", "GB"):
            return f"{code} (0){rest}"
        if region == "FR":
            return national.replace(" ", ".")
        if region == "US":
            return national.replace("(", "").replace(") ", "-")
        if region == "NL":
            return national.replace(" ", "-", 1).replace(" ", "")
        return "00" + intl[1:]

    def card(self, variant: str | None) -> str:
        brand = variant or self.pick(["visa", "visa", "mc", "mc2", "amex", "discover"])
        prefix, length = {"visa": ("4", 16), "mc": (str(self.rng.randint(51, 55)), 16),
                          "mc2": (str(self.rng.randint(2221, 2720)), 16),
                          "amex": (self.pick(["34", "37"]), 15),
                          "discover": ("6011", 16)}[brand]
        body = prefix + self.chars(string.digits, length - len(prefix) - 1)
        digits = body + _luhn_digit(body)
        sep = self.pick([" ", " ", "-", ""])
        if length == 15:
            return sep.join([digits[:4], digits[4:10], digits[10:]])
        return sep.join(digits[i:i + 4] for i in range(0, 16, 4))

    def iban(self, variant: str | None) -> str:
        country = variant or self.pick(IBAN_COUNTRIES[self.lang])
        bban = ""
        for count, kind in re.findall(r"(\d+)([nac])", BBAN[country]):
            alphabet = {"n": string.digits, "a": string.ascii_uppercase,
                        "c": string.ascii_uppercase + string.digits}[kind]
            bban += self.chars(alphabet, int(count))
        iban = country + _iban_check(country, bban) + bban
        if self.rng.random() < 0.6:
            return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))
        return iban

    def ip(self, variant: str | None) -> str:
        kind = variant or self.pick(["v4", "v4", "private", "v6", "v6short"])
        r = self.rng.randint
        if kind == "v4":
            first = self.pick(["203", "198", "85", "91", "177", "62", "151", "84"])
            return f"{first}.{r(0, 255)}.{r(0, 255)}.{r(1, 254)}"
        if kind == "private":
            return self.pick([f"10.{r(0, 255)}.{r(0, 255)}.{r(1, 254)}",
                              f"192.168.{r(0, 255)}.{r(1, 254)}",
                              f"172.{r(16, 31)}.{r(0, 255)}.{r(1, 254)}"])
        groups = [f"{r(0, 65535):x}" for _ in range(8)]
        if kind == "v6":
            return "2001:db8:" + ":".join(groups[2:])
        return f"2a02:{groups[1]}:{groups[2]}::{groups[3]}"

    def secret(self, variant: str | None) -> str:
        kind = variant or self.pick(list(SECRETS))
        return SECRETS[kind](self)

    def url_password(self, variant: str | None) -> str:
        return self.pick(["S3cr3t!pass", "hunter2", "Pa55w0rd2026", "x9Kq2LmZ", "changeme123",
                          "Sommer2026", "admin1234", "N0tS0S3cret", "tr0ub4dor"])

    # -- must survive ----------------------------------------------------------------------
    def neg(self, variant: str | None) -> str:
        return NEGATIVES[variant or "req"](self)


def _random_number(rng: random.Random, region: str, kind: str) -> phonenumbers.PhoneNumber:
    number_type = (phonenumbers.PhoneNumberType.MOBILE if kind == "mobile"
                   else phonenumbers.PhoneNumberType.FIXED_LINE)
    example = phonenumbers.example_number_for_type(region, number_type)
    assert example is not None, region
    national = str(example.national_number)
    for _ in range(200):
        candidate = national[:-4] + "".join(rng.choice(string.digits) for _ in range(4))
        number = phonenumbers.parse("+" + str(example.country_code) + candidate)
        if phonenumbers.is_valid_number(number):
            return number
    return example


def _luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def _iban_check(country: str, bban: str) -> str:
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{98 - int(numeric) % 97:02d}"


SECRETS: dict[str, Callable[[Gen], str]] = {
    "gateway": lambda g: f"pk-{g.pick(['live', 'test'])}-{g.chars(ALNUM, 32)}",
    "gw": lambda g: f"gw_{g.pick(['live_', 'test_', ''])}{g.chars(ALNUM, 28)}",
    "anthropic": lambda g: f"sk-ant-api03-{g.chars(ALNUM + '-_', 60)}AA",
    "openai": lambda g: f"sk-{g.pick(['proj-', ''])}{g.chars(ALNUM, 48)}",
    "stripe": lambda g: f"{g.pick(['sk', 'rk', 'sk'])}_{g.pick(['live', 'test'])}_"
                        f"{g.chars(ALNUM, 24)}",
    "whsec": lambda g: f"whsec_{g.chars(ALNUM, 32)}",
    "github": lambda g: f"{g.pick(['ghp', 'gho', 'ghs'])}_{g.chars(ALNUM, 36)}",
    "github_pat": lambda g: f"github_pat_11{g.chars(ALNUM, 20)}_{g.chars(ALNUM, 59)}",
    "aws": lambda g: f"AKIA{g.chars(string.ascii_uppercase + string.digits, 16)}",
    "bearer": lambda g: g.chars(ALNUM, 8) + g.chars(string.digits, 2) + g.chars(ALNUM, 22),
    "jwt": lambda g: f"eyJhbGciOiJIUzI1NiJ9.eyJ{g.chars(ALNUM, 40)}.{g.chars(ALNUM + '-_', 43)}",
    "password": lambda g: g.pick(["Sommer2026!", "hunter2", "P@ssw0rd!", "Zx81-spectrum",
                                  "Girasol#2026", "qwerty123", "L3tM3In!", "azerty_75"]),
    "linear": lambda g: f"lin_api_{g.chars(ALNUM, 40)}",
    "slack": lambda g: f"xoxb-{g.chars(string.digits, 12)}-{g.chars(ALNUM, 24)}",
    "private_key": lambda g: "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(
        g.chars(ALNUM + "+/", 64) for _ in range(3)) + "\n-----END RSA PRIVATE KEY-----",
}

NEGATIVES: dict[str, Callable[[Gen], str]] = {
    "req": lambda g: f"req_{g.chars(HEX, 20)}",
    "key": lambda g: f"key_{g.chars(HEX, 4)}",
    "ws": lambda g: f"ws_{g.pick(['girasol', 'northwind', 'acme', 'luna', 'rossi'])}",
    "ch": lambda g: f"ch_{g.chars(ALNUM, 24)}",
    "in": lambda g: f"in_{g.chars(ALNUM, 24)}",
    "cus": lambda g: f"cus_{g.chars(ALNUM, 14)}",
    "sub": lambda g: f"sub_{g.chars(ALNUM, 24)}",
    "pi": lambda g: f"pi_{g.chars(ALNUM, 24)}",
    "evt": lambda g: f"evt_{g.chars(ALNUM, 24)}",
    "re": lambda g: f"re_{g.chars(ALNUM, 24)}",
    "sha": lambda g: g.chars(HEX, 40),
    "short_sha": lambda g: g.chars(HEX, 7),
    "version": lambda g: f"2.{g.rng.randint(10, 19)}.{g.rng.randint(0, 4)}",
    "ts": lambda g: f"2026-05-{g.rng.randint(10, 28)}T{g.rng.randint(0, 23):02d}:"
                    f"{g.rng.randint(0, 59):02d}:{g.rng.randint(0, 59):02d}Z",
    "date_eu": lambda g: f"{g.rng.randint(10, 28)}.05.2026",
    "date_slash": lambda g: f"{g.rng.randint(10, 28)}/05/2026",
    "amount": lambda g: g.pick([f"${g.rng.randint(1, 9)},{g.rng.randint(100, 999)}.50",
                                f"{g.rng.randint(1, 9)}.{g.rng.randint(100, 999)},00 €",
                                f"€{g.rng.randint(10, 999)}.{g.rng.randint(10, 99)}",
                                f"{g.rng.randint(100, 999)} 000 tokens"]),
    "order": lambda g: g.chars(string.digits[1:], 1) + g.chars(string.digits, 12),
    "order_short": lambda g: str(g.rng.randint(100_000_000, 999_999_999)),
    "invoice": lambda g: f"INV-2026-{g.rng.randint(1, 999_999):06d}",
    "linear": lambda g: f"GW-{g.rng.randint(100, 999)}",
    "uuid": lambda g: "-".join(g.chars(HEX, n) for n in (8, 4, 4, 4, 12)),
    "trace": lambda g: g.chars(HEX, 32),
    "model": lambda g: g.pick(["gpt-4o-2024-08-06", "claude-sonnet-4-20250514",
                               "gemini-2.5-pro", "mistral-large-2411", "gpt-4.1-mini"]),
    "latency": lambda g: f"{g.rng.randint(30, 30_000)} ms",
    "pr": lambda g: f"#{g.rng.randint(1000, 9999)}",
    "node": lambda g: f"PR_kwDO{g.chars(ALNUM, 12)}",
    "tok": lambda g: g.pick(["tok_visa", "pm_card_visa", "tok_chargeDeclined", "pm_card_amex"]),
    "last4": lambda g: f"**** **** **** {g.chars(string.digits, 4)}",
    "tracking": lambda g: f"1Z{g.chars(string.ascii_uppercase + string.digits, 16)}",
    "unix": lambda g: str(g.rng.randint(1_760_000_000, 1_790_000_000)),
    "port": lambda g: str(g.pick(["443", "8080", "5432", "6379"])),
}


def render(template: str, gen: Gen) -> tuple[str, list[dict[str, object]]]:
    """Fill a template's slots; return the text and its labeled spans."""
    out: list[str] = []
    entities: list[dict[str, object]] = []
    values: list[str] = []
    cursor = position = 0
    for match in SLOT.finditer(template):
        literal = template[cursor:match.start()]
        out.append(literal)
        position += len(literal)
        if match.group(3):  # [[=TYPE|literal]]: a labeled value written out in the template
            kind, value = match.group(3), match.group(4)
        else:
            kind = match.group(1)
            value = getattr(gen, kind.lower())(match.group(2))
        if kind != "neg":
            entities.append({"type": kind, "start": position, "end": position + len(value)})
            values.append(value)
        out.append(value)
        position += len(value)
        cursor = match.end()
    out.append(template[cursor:])
    text = "".join(out)
    for entity, value in zip(entities, values, strict=True):
        assert text[int(str(entity["start"])):int(str(entity["end"]))] == value, (entity, value)
    return text, entities


def build(seed: int = 20260514) -> list[dict[str, object]]:
    """Render every template a few times with different values."""
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    for kind, templates, copies in (("ticket", TICKETS, 3), ("log", LOGS, 4),
                                    ("evidence", EVIDENCE, 3)):
        for number, (lang, template) in enumerate(templates):
            for copy in range(copies):
                text, entities = render(template, Gen(rng, lang))
                rows.append({"id": f"{kind}-{number:02d}-{copy}", "lang": lang, "kind": kind,
                             "split": "dev", "text": text, "entities": entities})
    for number, (kind, lang, template) in enumerate(HOLDOUT):
        for copy in range(3):
            text, entities = render(template, Gen(rng, lang))
            rows.append({"id": f"holdout-{number:02d}-{copy}", "lang": lang, "kind": kind,
                         "split": "holdout", "text": text, "entities": entities})
    return rows


def case_rows() -> list[dict[str, object]]:
    """Render the eval cases' tickets as a prompt shows them, labeled by hand."""
    rows: list[dict[str, object]] = []
    for path in sorted(CASES.glob("*/case.yaml")):
        case = yaml.safe_load(path.read_text(encoding="utf-8"))
        ticket, requester = case["ticket"], case["ticket"]["requester"]
        text = (f"From: {requester['name']} <{requester['email']}>\n"
                f"Subject: {ticket['subject']}\n\n{ticket['body']}")
        labels = [("PERSON", requester["name"]), ("EMAIL", requester["email"])] + [
            ("SECRET", secret) for secret in CASE_SECRETS.get(case["id"], [])]
        entities = [{"type": kind, "start": m.start(), "end": m.end()}
                    for kind, literal in labels for m in re.finditer(re.escape(literal), text)]
        rows.append({"id": f"case-{case['id']}", "lang": "es" if "pub-09" in case["id"] else (
            "de" if "pub-03" in case["id"] else "en"), "kind": "ticket", "split": "cases",
            "text": text, "entities": sorted(entities, key=lambda e: int(str(e["start"])))})
    return rows


def main() -> None:
    """Write the corpus and check every span."""
    rows = build() + case_rows()
    with CORPUS.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} snippets -> {CORPUS}")


if __name__ == "__main__":
    main()
