"""Replace PII and secrets with per-investigation placeholders, and put PII back for reviewers."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import ConfigurationError
from governance.redaction.vault import PLACEHOLDER, SECRET_KIND, InMemoryVault, Vault

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, RecognizerResult
    from presidio_analyzer.nlp_engine import NlpArtifacts
    from presidio_anonymizer import AnonymizerEngine
    from spacy.language import Language

# Presidio's entity names -> the names findings and the corpus use
ENTITY_NAMES = {
    "EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CARD",
    "IBAN_CODE": "IBAN", "IP_ADDRESS": "IP", "SECRET": "SECRET",
    "URL_PASSWORD": "URL_PASSWORD", "PERSON": "PERSON",
}
# finding type -> placeholder kind: a password in a URL is a secret like any other
PLACEHOLDER_KINDS = {name: name for name in ENTITY_NAMES.values()} | {
    "URL_PASSWORD": SECRET_KIND}
SECRET_TYPES = frozenset({"SECRET", "URL_PASSWORD"})
# the same key names core/telemetry/logging.py scrubs whole, whatever their value looks like
_SECRET_KEYS = re.compile(r"(?i)(api[_-]?key|secret|password|passwd|token|authorization|cookie)")
_PERSON_KEYS = frozenset({"full_name", "customer_name", "requester_name", "contact_name",
                          "billing_name", "cardholder_name", "author_name"})
# a plain "name" is a person's only inside these objects (a release or a plan has one too)
_PERSON_PARENTS = frozenset({"billing_details", "shipping", "customer", "requester", "author",
                             "committer", "owner", "user", "contact", "cardholder", "assignee",
                             "creator"})
_NER_MODELS = {"en": ("en_core_web_sm", "en_core_web_md", "en_core_web_lg")}
_SCORE_THRESHOLD = 0.5
_LONG_RUN = re.compile(r"\S{64,}")
# one analysis at a time per process: spaCy pipelines are not documented as thread-safe, and
# the work holds the GIL anyway; building an analyzer twice in parallel would waste seconds
_ANALYZE_LOCK = threading.Lock()
_BUILD_LOCK = threading.Lock()


@dataclass(frozen=True, order=True)
class Finding:
    """One sensitive span: its type (EMAIL, PHONE, CARD, IBAN, IP, SECRET, …) and offsets."""

    start: int
    end: int
    entity_type: str
    score: float


def installed_ner_model(language: str) -> str | None:
    """Return the name of an installed spaCy NER package for a language, if any."""
    import spacy.util

    candidates = _NER_MODELS.get(language, tuple(
        f"{language}_core_news_{size}" for size in ("sm", "md", "lg")))
    return next((name for name in candidates if spacy.util.is_package(name)), None)


@functools.lru_cache(maxsize=8)
def build_analyzer(languages: tuple[str, ...], ner_models: tuple[tuple[str, str], ...]
                   ) -> AnalyzerEngine:
    """Build (once per option set) an AnalyzerEngine over blank spaCy pipelines and NER models."""
    import spacy
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    from governance.redaction.recognizers import pattern_recognizers

    ner = dict(ner_models)

    class OfflineSpacyNlpEngine(SpacyNlpEngine):
        """spaCy pipelines that never download: blank tokenizers or the given NER models."""

        def load(self) -> None:
            # Presidio's own load() would call spacy.cli.download for a missing model
            self.nlp = {  # type: ignore[assignment]
                lang: spacy.load(ner[lang]) if lang in ner else _blank(lang)
                for lang in languages}

        def process_text(self, text: str, language: str) -> NlpArtifacts:
            # spaCy's rule tokenizer is quadratic on a long run without spaces (6 s for 40 kB
            # of "1:1:…"); NER has nothing to find there, so such runs become spaces, which
            # keeps every offset
            return super().process_text(_LONG_RUN.sub(_blank_out, text), language)

    engine = OfflineSpacyNlpEngine(
        models=[{"lang_code": lang, "model_name": ner.get(lang, "blank")} for lang in languages],
        ner_model_configuration=NerModelConfiguration(labels_to_ignore=[
            "DATE", "TIME", "ORG", "GPE", "LOC", "NORP", "MONEY", "CARDINAL", "ORDINAL",
            "PERCENT", "QUANTITY", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW", "LANGUAGE",
            "FAC", "MISC"]))
    registry = RecognizerRegistry(supported_languages=list(languages))
    for lang in languages:
        for recognizer in pattern_recognizers(lang):
            registry.add_recognizer(recognizer)
        if lang in ner:
            registry.add_recognizer(SpacyRecognizer(supported_language=lang,
                                                    supported_entities=["PERSON"]))
    return AnalyzerEngine(registry=registry, nlp_engine=engine,
                          supported_languages=list(languages),
                          default_score_threshold=_SCORE_THRESHOLD)


def _blank(language: str) -> Language:
    """Return spacy.blank(language) splitting on whitespace only (context words need no more)."""
    import spacy
    from spacy.tokenizer import Tokenizer  # type: ignore[import-not-found]  # a Cython module

    nlp = spacy.blank(language)
    nlp.tokenizer = Tokenizer(nlp.vocab)
    return nlp


def _blank_out(match: re.Match[str]) -> str:
    return " " * len(match.group(0))


@functools.cache
def _anonymizer() -> AnonymizerEngine:
    from presidio_anonymizer import AnonymizerEngine

    factory: Callable[[], AnonymizerEngine] = AnonymizerEngine  # its __init__ is untyped
    return factory()


def _lookup(names: dict[tuple[str, str], str], kind: str) -> Callable[[str], str]:
    return lambda original: names[kind, original]


def _resolve(results: list[RecognizerResult]) -> list[Finding]:
    """Keep non-overlapping spans: secrets first, then the surest, then the longest."""
    ranked = sorted(
        (Finding(r.start, r.end, ENTITY_NAMES[r.entity_type], r.score) for r in results
         if r.entity_type in ENTITY_NAMES and r.end > r.start),
        key=lambda f: (f.entity_type not in SECRET_TYPES, -f.score, f.start - f.end))
    kept: list[Finding] = []
    for finding in ranked:
        if all(finding.end <= k.start or finding.start >= k.end for k in kept):
            kept.append(finding)
    return sorted(kept)


class Redactor:
    """Finds PII and secrets with Presidio and swaps them for placeholders like <EMAIL_1>."""

    def __init__(self, vault: Vault | None = None, *, languages: tuple[str, ...] = ("en",),
                 use_ner: bool | None = None) -> None:
        if not languages:
            raise ConfigurationError("redaction needs at least one language")
        self.vault: Vault = vault if vault is not None else InMemoryVault()
        self.languages = tuple(languages)
        self._use_ner = use_ner
        self._ner: tuple[tuple[str, str], ...] | None = None

    @property
    def ner_models(self) -> dict[str, str]:
        """Return the NER model used per language (empty: patterns only)."""
        if self._ner is None:
            found = {lang: installed_ner_model(lang) for lang in self.languages}
            models = {lang: name for lang, name in found.items() if name is not None}
            if self._use_ner and not models:
                raise ConfigurationError(
                    f"use_ner=True but no spaCy NER model is installed for {self.languages}")
            self._ner = tuple(sorted(models.items())) if self._use_ner is not False else ()
        return dict(self._ner)

    def _analyzer(self) -> AnalyzerEngine:
        ner = tuple(sorted(self.ner_models.items()))
        with _BUILD_LOCK:
            return build_analyzer(self.languages, ner)

    def findings(self, text: str) -> list[Finding]:
        """Return the sensitive spans of `text`, sorted and non-overlapping."""
        if not text:
            return []
        analyzer = self._analyzer()
        with _ANALYZE_LOCK:
            results = list(analyzer.analyze(text, language=self.languages[0]))
            for lang in self.ner_models:
                if lang != self.languages[0]:
                    results += analyzer.analyze(text, language=lang, entities=["PERSON"])
        return _resolve(results)

    def redact(self, text: str, *, investigation_id: str) -> str:
        """Return `text` with every finding replaced by its investigation's placeholder."""
        from presidio_anonymizer.entities import OperatorConfig
        from presidio_anonymizer.entities import RecognizerResult as Span

        found = self.findings(text)
        if not found:
            return text
        # allocate in reading order (the anonymizer works from the end), so the first e-mail
        # of a ticket is <EMAIL_1>
        names: dict[tuple[str, str], str] = {}
        spans = []
        for finding in found:
            kind, original = PLACEHOLDER_KINDS[finding.entity_type], text[finding.start:finding.end]
            if (kind, original) not in names:
                names[kind, original] = self.vault.placeholder_for(investigation_id, kind,
                                                                   original)
            spans.append(Span(kind, finding.start, finding.end, finding.score))
        operators = {kind: OperatorConfig("custom", {"lambda": _lookup(names, kind)})
                     for kind, _ in names}
        result = _anonymizer().anonymize(text, spans, operators,
                                         merge_entities_with_spaces=False)
        return str(result.text)

    def redact_value(self, value: Any, *, investigation_id: str) -> Any:
        """Redact every string inside dicts, lists and tuples; keys stay as they are."""
        return self._redact_value(value, investigation_id, "", "")

    def _redact_value(self, value: Any, investigation_id: str, key: str, parent: str) -> Any:
        if isinstance(value, str):
            return self._redact_field(value, investigation_id, key, parent)
        if isinstance(value, Mapping):
            return {k: self._redact_value(v, investigation_id, str(k), key)
                    for k, v in value.items()}
        if isinstance(value, list | tuple):
            items = [self._redact_value(v, investigation_id, key, parent) for v in value]
            return items if isinstance(value, list) else tuple(items)
        return value

    def _redact_field(self, value: str, investigation_id: str, key: str, parent: str) -> str:
        if not value.strip() or PLACEHOLDER.fullmatch(value):
            return value
        key, parent = key.lower(), parent.lower()
        kind = None
        if _SECRET_KEYS.search(key) and not key.endswith(("_tokens", "_id")):
            kind = SECRET_KIND  # as the log scrubber does: a password field is a secret
        elif "@" not in value and (key in _PERSON_KEYS or (
                key == "name" and parent in _PERSON_PARENTS)):
            kind = "PERSON"
        if kind is None:
            return self.redact(value, investigation_id=investigation_id)
        return self.vault.placeholder_for(investigation_id, kind, value)

    def restore(self, text: str, *, investigation_id: str, allowed: bool) -> str:
        """Put originals back for a reviewer who may see them; secrets stay placeholders."""
        if not allowed:
            return text

        def original(match: re.Match[str]) -> str:
            if match.group(1) == SECRET_KIND:
                return match.group(0)
            found = self.vault.original_of(investigation_id, match.group(0))
            return match.group(0) if found is None else found

        return PLACEHOLDER.sub(original, text)
