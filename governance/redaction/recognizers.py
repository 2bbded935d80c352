"""Offline Presidio recognizers: secrets, phone numbers, cards, e-mails and signature names."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import phonenumbers
import tldextract
from presidio_analyzer import EntityRecognizer, LocalRecognizer, Pattern, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
)

SECRET = "SECRET"  # noqa: S105 - an entity name
URL_PASSWORD = "URL_PASSWORD"  # noqa: S105 - an entity name
PHONE = "PHONE_NUMBER"
PERSON = "PERSON"


# -- secrets ---------------------------------------------------------------------------------

_PLACEHOLDER_VALUE = re.compile(r"^(?:<|\$\{|\{\{|%\(|\[redacted)", re.IGNORECASE)
_OBJECT_ID = re.compile(r"[a-z]{2,5}_[A-Za-z0-9]{3,32}")  # key_31f0, req_…, ch_…: ids, not keys
_NOT_VALUES = frozenset({"null", "none", "nil", "true", "false", "redacted", "hidden", "n/a"})


def _credential(value: str, *, strict: bool = False) -> bool:
    """Say whether the value after `password=` or `token:` looks like a real credential."""
    if len(value) < 4 or value.lower() in _NOT_VALUES or _PLACEHOLDER_VALUE.match(value):
        return False
    if set(value) <= set("*xX•."):
        return False  # already masked
    if _OBJECT_ID.fullmatch(value):
        return False
    mixed = any(c.isdigit() for c in value) or not value.isalnum()
    return mixed if strict else mixed or len(value) >= 12


@dataclass(frozen=True)
class SecretRule:
    """One credential shape; `group` names the part that is secret (default: the match)."""

    name: str
    regex: re.Pattern[str]
    entity: str = SECRET
    score: float = 0.95
    group: str | None = None
    check: str = ""  # "", "value" or "strict": how the matched value must look

    def span(self, match: re.Match[str]) -> tuple[int, int] | None:
        """Return the secret's span in the text, or None when the value is no credential."""
        start, end = match.span(self.group or 0)
        if not self.check:
            return start, end
        raw = match.group(self.group or 0)
        value = raw.rstrip(".,)!?")
        if value.endswith(":") or not _credential(value, strict=self.check == "strict"):
            return None
        return start, start + len(value)


def _rule(name: str, pattern: str, **kwargs: Any) -> SecretRule:
    return SecretRule(name, re.compile(pattern), **kwargs)


_KEYWORDS = (
    r"password|passwd|passwort|kennwort|pwd|passcode|pass|contraseña|contrasena|clave"
    r"|mot[ _]de[ _]passe|mdp|senha|palavra[ -]passe|wachtwoord|client[_-]?secret"
    r"|aws[_-]?secret[_-]?access[_-]?key|secret[_-]?(?:access[_-]?)?key|secret"
    r"|api[_-]?(?:key|token|secret)|apikey|(?:access|auth|refresh|session)[_-]?token|token"
    r"|private[_-]?key|authorization|cookie"
)
# "Senha do painel: …", "password for the admin panel: …"
_FILLER = (r"(?:[ \t]+(?:do|da|de|del|des|du|for|of|to|für|zum|zur|van|voor|het|della|dello"
           r"|per|para|pour)(?:[ \t]+[\w-]+){1,2})?")
_PASSWORD_WORDS = (
    r"password|passwort|kennwort|contraseña|clave|mot de passe|senha|wachtwoord")  # noqa: S105
_LINKING_VERBS = r"is|ist|lautet|war|was|es|era|est|était|é|è"

# Every pattern of core/telemetry/logging.py is here too, so logs and prompts agree.
SECRET_RULES: tuple[SecretRule, ...] = (
    _rule("private_key", r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END"
          r" [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|(?:\s*[A-Za-z0-9+/=]{16,})+)", score=1.0),
    _rule("anthropic", r"\bsk-ant-[A-Za-z0-9_\-]{8,}"),
    _rule("openai", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}"),
    _rule("gateway", r"\bpk-(?:live|test)-[A-Za-z0-9]{12,}"),
    _rule("gateway_gw", r"\bgw_(?:(?:live|test)_)?[A-Za-z0-9]{20,}"),
    _rule("stripe", r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{8,}"),
    _rule("stripe_webhook", r"\bwhsec_[A-Za-z0-9]{16,}"),
    _rule("github", r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
    _rule("github_pat", r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    _rule("aws_access_key", r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
    _rule("linear", r"\blin_(?:api|oauth)_[A-Za-z0-9]{16,}"),
    _rule("slack", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    _rule("google", r"\bAIza[0-9A-Za-z_\-]{35}"),
    _rule("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    _rule("bearer", r"(?i)\bbearer\s+(?P<s>(?=[A-Za-z._~+/\-]*\d)[A-Za-z0-9._~+/\-]{12,}=*)",
          group="s"),
    _rule("basic_auth", r"(?i)\bauthorization\s*[:=]\s*basic\s+(?P<s>[A-Za-z0-9+/]{8,}={0,2})",
          group="s"),
    # db_password=…, "x-api-key": "…", Passwort: …, client_secret => …
    _rule("assignment", rf"(?i)(?<![\w-])(?:[a-z0-9]+[_-])*(?:{_KEYWORDS}){_FILLER}[\"']?"
          r"\s*(?:[:=]|=>)\s*[\"']?(?P<s>[^\s\"'`,;&<>]+)", group="s", check="value"),
    _rule("phrase", rf"(?i)\b(?:{_PASSWORD_WORDS})\s+(?:{_LINKING_VERBS})\s+[\"'“«]?"
          r"(?P<s>[^\s\"'”»]{6,})", group="s", check="strict"),
    _rule("url_password", r"(?<=://)[^/\s:@]*:(?P<s>[^/\s@]+)(?=@)", entity=URL_PASSWORD,
          group="s"),
)


class SecretRecognizer(LocalRecognizer):
    """Credentials by shape: provider keys, tokens, passwords in assignments and URLs."""

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(supported_entities=[SECRET, URL_PASSWORD],
                         supported_language=supported_language, name="SecretRecognizer")

    def load(self) -> None:
        """Load nothing: the rules compile at import."""

    def analyze(self, text: str, entities: list[str],
                nlp_artifacts: NlpArtifacts | None = None) -> list[RecognizerResult]:
        """Return one result per credential-shaped substring."""
        results: list[RecognizerResult] = []
        for rule in SECRET_RULES:
            if rule.entity not in entities:
                continue
            for match in rule.regex.finditer(text):
                span = rule.span(match)
                if span is not None and span[1] > span[0]:
                    results.append(_result(self, rule.entity, span, rule.score))
        return results


def _result(recognizer: EntityRecognizer, entity: str, span: tuple[int, int],
            score: float) -> RecognizerResult:
    return RecognizerResult(entity_type=entity, start=span[0], end=span[1], score=score,
                            recognition_metadata={
                                RecognizerResult.RECOGNIZER_NAME_KEY: type(recognizer).__name__,
                                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id})


# -- e-mail addresses ------------------------------------------------------------------------

@functools.cache
def offline_tld_extract() -> tldextract.TLDExtract:
    """Return a TLDExtract that uses the bundled suffix snapshot: no fetch, no cache dir."""
    return tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)


# Presidio's pattern with RFC 5321's length limits: unbounded, it is quadratic on a long run of
# word characters (a base64 blob takes a minute); a match never starts inside a local part
_EMAIL = (r"(?<![!#$%&'*+\-/=?^_`{|}~.\w])[!#$%&'*+\-/=?^_`{|}~\w]"
          r"(?:[!#$%&'*+\-/=?^_`{|}~.\w]{0,62}[!#$%&'*+\-/=?^_`{|}~\w])?"
          r"@\w{1,63}(?:-+\w{1,63})*(?:\.\w{1,63}(?:-+\w{1,63})*)+\b")


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer, validating domains against the bundled suffix list."""

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(patterns=[Pattern("Email (bounded)", _EMAIL, 0.5)],
                         supported_language=supported_language)

    def validate_result(self, pattern_text: str) -> bool:
        """Accept an address whose domain ends in a known public suffix."""
        return offline_tld_extract()(pattern_text.rpartition("@")[2]).fqdn != ""


# -- phone numbers and cards -----------------------------------------------------------------

PHONE_CONTEXT = (
    "phone", "tel", "call", "mobile", "cell", "whatsapp", "fax", "sms", "ring", "reach me",
    "handy", "rufnummer", "anruf", "mobil", "erreichbar", "teléfono", "telefono", "móvil",
    "movil", "llam", "téléphone", "portable", "appel", "joindre", "telefone", "celular",
    "telemóvel", "ligue", "ligar", "cellulare", "chiam", "telefoon", "mobiel", "bel ",
    "bellen", "contact", "número", "numéro", "nummer:",
)
NEGATIVE_CONTEXT = (
    "order", "invoice", "ticket", "case", "ref", "#", "nº", "n°", "no.", " id", "pedido",
    "factura", "bestell", "rechnung", "auftrag", "commande", "facture", "ordine", "fattura",
    "bestelling", "factuur", "encomenda", "fatura", "account", "konto", "cuenta", "compte",
    "transaction", "amount", "total", "version", "build", "sku", "tracking",
    "request", "sendung", "envío", "colis", "batch", "job", "trace", "span",
)
# digit groups joined by single separators, not inside a word, an id, an IP or a number
_PHONE_CANDIDATE = re.compile(
    r"(?:(?<![\w+#/.,\-@])|(?<=[.:])(?=\+))(?<!\d[ .\-/])"
    r"(?P<num>(?:(?:\+|00)[ ]?)?(?:\(\d{1,5}\)|\d{1,5})"
    r"(?:(?:[ .\-/]|[ ]?\(0\)[ ]?)?(?:\(\d{1,5}\)[ ]?|\d{1,6}))*+)"
    r"(?![\w@]|[.,\-/]\d)")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
_THOUSANDS = re.compile(r"\d{1,3}(?:\.\d{3})+")
# what follows an amount or a count, never a phone number
_UNIT = re.compile(r"[ ]?(?:[€$£¥%]|(?:eur|usd|gbp|chf|brl|mxn|tokens?|requests?|calls|ms|"
                   r"kb|mb|gb|rpm|req)\b)", re.IGNORECASE)
# national formats: a leading trunk "0" points at these countries, any other digit at those
_TRUNK_REGIONS = ("DE", "GB", "FR", "NL", "IT", "BE", "AT", "CH", "IE")
_PLAIN_REGIONS = ("US", "ES", "PT", "IT", "BR", "MX")


def _window(text: str, start: int, width: int) -> str:
    return text[max(0, start - width):start].lower()


def _last(window: str, words: tuple[str, ...]) -> int:
    return max(window.rfind(word) for word in words)


def _phone_context(text: str, start: int) -> int:
    """Return 1 if phone words come last before `start`, -1 if id words do, 0 if neither."""
    window = _window(text, start, 32)
    positive, negative = _last(window, PHONE_CONTEXT), _last(window, NEGATIVE_CONTEXT)
    if positive < 0 and negative < 0:
        return 0
    return 1 if positive > negative else -1


@functools.lru_cache(maxsize=8192)
def _valid_phone(number: str, regions: tuple[str | None, ...]) -> bool:
    for region in regions:
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(number, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


def clear_caches() -> None:
    """Forget memoized phone-number checks (a benchmark measures cold lookups)."""
    _valid_phone.cache_clear()


def phone_score(text: str, start: int, raw: str) -> float:
    """Score a digit run as a phone number (0 when it is not one)."""
    digits = re.sub(r"\D", "", raw.replace("(0)", ""))
    international = raw.startswith(("+", "00"))
    if not 7 <= len(digits) <= 15 or _DATE.fullmatch(raw) or _IPV4.fullmatch(raw):
        return 0.0
    if _UNIT.match(text, start + len(raw)):
        return 0.0
    context = _phone_context(text, start)
    if international:  # "+49 …" is a phone number whatever the words before it
        number = "+" + (digits[2:] if raw.startswith("00") else digits)
        return 0.75 if _valid_phone(number, (None,)) else 0.0
    # a bare digit run or 1.234.567 is as likely an id or an amount: it needs a phone word
    ambiguous = raw.isdigit() or _THOUSANDS.fullmatch(raw) is not None
    if context < 0 or (ambiguous and context == 0):
        return 0.0
    regions = _TRUNK_REGIONS if digits.startswith("0") else _PLAIN_REGIONS
    return (0.6 if ambiguous else 0.7) if _valid_phone(raw, regions) else 0.0


class FastPhoneRecognizer(LocalRecognizer):
    """Phone numbers: digit-run candidates validated by libphonenumber for likely regions.

    Presidio's PhoneRecognizer scans the whole text once per region: 29 ms for 14 regions
    on a 1,500-character ticket here, twice the whole budget; this takes about 0.6 ms.
    """

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(supported_entities=[PHONE], supported_language=supported_language,
                         name="FastPhoneRecognizer")

    def load(self) -> None:
        """Load nothing: libphonenumber's metadata loads on first use."""

    def analyze(self, text: str, entities: list[str],
                nlp_artifacts: NlpArtifacts | None = None) -> list[RecognizerResult]:
        """Return the candidates that libphonenumber accepts as valid numbers."""
        results: list[RecognizerResult] = []
        for match in _PHONE_CANDIDATE.finditer(text):
            start, raw = match.start("num"), match.group("num").rstrip(" .-/")
            score = phone_score(text, start, raw)
            if score:
                results.append(_result(self, PHONE, (start, start + len(raw)), score))
        return results


class ContextCardRecognizer(CreditCardRecognizer):
    """Presidio's Luhn-checked card numbers, minus order and invoice numbers that pass Luhn."""

    def __init__(self, supported_language: str = "en") -> None:
        # Presidio's pattern predates Mastercard's 2221-2720 range
        mastercard_2 = Pattern("Mastercard 2-series", r"\b2(?:2[2-9]\d|[3-6]\d{2}|7[01]\d|720)"
                               r"[- ]?\d{4}[- ]?\d{4}[- ]?\d{4}\b", 0.3)
        super().__init__(patterns=[*CreditCardRecognizer.PATTERNS, mastercard_2],
                         supported_language=supported_language)

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                regex_flags: int | None = None) -> list[RecognizerResult]:
        """Drop short runs and bare digit runs that follow words like 'order' or 'invoice'."""
        found: list[RecognizerResult] = super().analyze(text, entities, nlp_artifacts,
                                                        regex_flags)
        kept = []
        for result in found:
            value = text[result.start:result.end]
            if sum(c.isdigit() for c in value) < 14:
                continue  # no issuer hands out 13-digit cards any more; such runs are ids
            if value.isdigit() and _phone_context(text, result.start) < 0:
                continue
            kept.append(result)
        return kept


# -- names without an NER model --------------------------------------------------------------

# a capitalized word of at most 31 letters, never a slice of a longer run (which would make
# every rule quadratic on a long base64 blob)
_WORD = (
    r"(?<![\w'’\-])[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿA-ZÀ-ÖØ-Þ'’\-]{1,30}(?![\w'’\-])")
_PARTICLE = r"(?:van|von|de|da|di|del|dos|das|du|le|la|der|den|ten|ter|y)"
_NAME = rf"(?P<name>{_WORD}(?:[ ](?:{_PARTICLE}[ ])*{_WORD}){{0,2}})"
_FULL_NAME = rf"(?P<name>{_WORD}(?:[ ](?:{_PARTICLE}[ ])*{_WORD}){{1,2}})"
_TITLE = r"(?:(?:Mr|Mrs|Ms|Dr|Herr|Frau|Sr|Sra|Srta|Señor|Señora|M|Mme|Sig|Dhr|Mevr)\.?[ ])?"
_GREETINGS = (
    r"Hi|Hello|Hey|Dear|Hallo|Liebe|Lieber|Sehr geehrte|Sehr geehrter|Hola|Estimado|Estimada"
    r"|Querido|Querida|Bonjour|Salut|Cher|Chère|Olá|Oi|Prezado|Prezada|Caro|Cara|Ciao"
    r"|Buongiorno|Gentile|Beste|Hoi|Goedemorgen|Goedemiddag"
)
_SIGN_OFFS = (
    r"Thanks|Thank you|Many thanks|Best|Best regards|Kind regards|Regards|Cheers|Sincerely"
    r"|Saludos|Un saludo|Muchas gracias|Gracias|Atentamente|Grüße|Viele Grüße|Beste Grüße"
    r"|Mit freundlichen Grüßen|Danke|Vielen Dank|Cordialement|Bien à vous|Merci"
    r"|Obrigado|Obrigada|Atenciosamente|Abraços|Cumprimentos|Grazie|Saluti|Cordiali saluti"
    r"|Distinti saluti|Groeten|Met vriendelijke groet|Met vriendelijke groeten|Bedankt"
    r"|Gruß|Gruss|Liebe Grüße|LG|MfG|VG|Saludos cordiales|Bisous|Amicalement|Abs"
)
_LABELS = (
    r"Name|Full name|Contact person|Nombre|Nom|Nome|Naam|Ansprechpartner|Ansprechpartnerin"
    r"|Kontaktperson|Persona de contacto|Cardholder|Cardholder name|Titular|Karteninhaber"
    r"|Titulaire|Nom du titulaire|Nome do titular|Intestatario"
)
_MENTIONS = (
    r"colleague|coworker|Kollege|Kollegin|compañero|compañera|collègue|colega|collega"
    r"|Customer|Kunde|Kundin|Cliente|Client|Klant"
)
_INTRODUCTIONS = (
    r"my name is|me llamo|mi nombre es|je m'appelle|mon nom est|ich heiße|mein name ist"
    r"|mi chiamo|il mio nome è|meu nome é|chamo-me|mijn naam is|soy|sono|sou"
)
PERSON_RULES: tuple[re.Pattern[str], ...] = (
    re.compile(rf"(?:^|(?<=\n)|(?<=\. ))(?:{_GREETINGS})[ ]+{_TITLE}{_NAME}[ ]*[,!\n]",
               re.MULTILINE),
    re.compile(rf"(?:^|(?<=\n))[ \t]*(?:{_SIGN_OFFS})[,.!]?(?:[ \t]*\n[ \t]*|[ \t]+)"
               rf"{_NAME}[ \t]*(?=\n|$|,|[ \t]+[—–|-][ \t])", re.MULTILINE),
    # a signature paragraph closing a text: "Ana Ruiz\nAcme Corp" or "Ana Ruiz, Acme Corp"
    re.compile(rf"\n[ \t]*\n[ \t]*{_FULL_NAME}[ \t]*(?:[,—–|-][^\n]{{0,60}})?"
               r"(?:\n[^\n]{1,60}){0,2}\s*\Z"),
    re.compile(rf"(?:{_LABELS})[ \t]*:[ \t]*{_TITLE}{_NAME}"),
    re.compile(rf"\b(?i:{_INTRODUCTIONS})[ ]+{_NAME}"),
    re.compile(rf"{_NAME}[ ]*<[^<>\s@]+@"),  # Display Name <address@…>
    re.compile(rf"(?m:^){_NAME}[ ]*[-–|,/][ ]*[^\s@]+@"),  # Name - address@… signature lines
    re.compile(rf"(?<=[.!?] )[-–—]{{1,2}}[ ]*{_NAME}[ \t]*(?m:$)"),  # "… Sorry! - Ana Ruiz"
    # "customer_name": "…" in JSON and logs; a bare "name" needs a full name (plans have one)
    re.compile(rf"(?i:[\"']?(?:customer|full|billing|contact|requester|cardholder)_name"
               rf"[\"']?[ ]*[:=][ ]*[\"']){_NAME}[\"']"),
    re.compile(rf"(?i:[\"']?name[\"']?[ ]*[:=][ ]*[\"']){_FULL_NAME}[\"']"),
    re.compile(rf"(?:{_MENTIONS})[ ]+{_FULL_NAME}"),  # "my colleague Ana Ruiz", "Kunde …"
)
_NOT_NAMES = frozenset((
    "team", "all", "there", "everyone", "folks", "support", "billing", "ops", "sales",
    "customer", "service", "hallo", "hello", "hi", "equipo", "todos", "soporte", "zusammen",
    "tous", "toutes", "équipe", "tutti", "ciao", "allemaal", "iedereen", "pessoal", "equipe",
    "thanks", "gracias", "danke", "merci", "grazie", "obrigado", "sir", "madam", "api",
    "gateway", "the", "best", "regards", "kind", "many", "cheers", "sincerely", "viele",
    "grüße", "beste", "freundlichen", "saludos", "cordialement", "atenciosamente", "cordiali",
    "saluti", "vriendelijke", "groet", "groeten", "dear", "hey",
    "gatewayco"))  # the vendor's own name: customers greet it like a person


def is_name_like(name: str) -> bool:
    """Say whether a capitalized phrase can be a person's name (not 'Team' or 'Support')."""
    words = name.split()
    return bool(words) and not any(word.lower() in _NOT_NAMES for word in words)


class SignatureNameRecognizer(LocalRecognizer):
    """Names in greetings, sign-offs, 'Name:' fields and 'Name <address>' headers."""

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(supported_entities=[PERSON], supported_language=supported_language,
                         name="SignatureNameRecognizer")

    def load(self) -> None:
        """Load nothing."""

    def analyze(self, text: str, entities: list[str],
                nlp_artifacts: NlpArtifacts | None = None) -> list[RecognizerResult]:
        """Return the names that follow a greeting, a sign-off or a name label."""
        results = [_result(self, PERSON, match.span("name"), 0.6)
                   for rule in PERSON_RULES for match in rule.finditer(text)
                   if is_name_like(match.group("name"))]
        deduplicated: list[RecognizerResult] = EntityRecognizer.remove_duplicates(results)
        return deduplicated


def pattern_recognizers(language: str) -> list[EntityRecognizer]:
    """Return the offline recognizers registered for one language."""
    return [SecretRecognizer(supported_language=language),
            OfflineEmailRecognizer(supported_language=language),
            FastPhoneRecognizer(supported_language=language),
            ContextCardRecognizer(supported_language=language),
            IbanRecognizer(supported_language=language),
            IpRecognizer(supported_language=language),
            SignatureNameRecognizer(supported_language=language)]
