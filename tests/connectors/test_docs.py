"""The docs connector over the sample cases' pages: ranking, hostile input, reindexing, faults."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from connectors.base import Connector, ToolResult
from connectors.docs.client import DocsClient
from connectors.docs.config import DocsConfig
from connectors.docs.index import (
    MAX_PASSAGE_CHARS,
    match_expression,
    parse_page,
    query_terms,
)
from connectors.registry import DisabledConnector, build_connector
from core.settings import BreakerSettings, ResilienceSettings, RetrySettings, TimeoutSettings
from core.telemetry import Metrics
from sandbox.cases import load_case

CASES = Path(__file__).resolve().parents[2] / "evals" / "cases"
GEMINI_DOCS = CASES / "pub-02-gemini-30s-timeout" / "world" / "docs"
BASE_URL = "https://docs.gatewayco.com"


def fast(**timeouts: float) -> ResilienceSettings:
    """Return a quick policy: small timeouts, 3 attempts, 0.01 s backoff, breaker at 3."""
    return ResilienceSettings(
        timeouts=TimeoutSettings(**{"connect_s": 0.5, "response_s": 1.0,
                                    "total_budget_s": 3.0, **timeouts}),
        retry=RetrySettings(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.01,
                            jitter_s=0.0),
        breaker=BreakerSettings(failure_threshold=3, cooldown_s=30.0),
    )


def make(root: Path | None, settings: ResilienceSettings | None = None,
         **config: Any) -> Connector:
    """Build the docs connector through the registry."""
    config.setdefault("resync_interval_s", 0)  # these tests change pages between calls
    built = build_connector("docs", DocsConfig(root=root, base_url=BASE_URL, **config),
                            resilience=settings or fast(), metrics=Metrics())
    assert isinstance(built, Connector)
    return built


def refs(result: ToolResult) -> list[str]:
    """Return the evidence refs of a successful result."""
    assert result.error is None, result.error
    return [e.ref for e in result.evidence]


def page(root: Path, rel: str, text: str | bytes) -> Path:
    """Write one page under root."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def docs() -> Connector:
    """Return a connector over the gemini case's docs (the one with a troubleshooting page)."""
    root = load_case(CASES / "pub-02-gemini-30s-timeout").world.docs_root
    assert root is not None and root == GEMINI_DOCS
    return make(root)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Return a writable copy of the gemini case's docs."""
    return Path(shutil.copytree(GEMINI_DOCS, tmp_path / "docs"))


@pytest.mark.parametrize(("query", "first"), [
    ("402 payment required", "errors/402-payment-required.md"),
    ("gemini timeout 30 seconds", "troubleshooting/gemini-30-second-timeout.md"),
    ("gemini-2.5-pro timeouts on long answers, always at about 30 seconds",
     "troubleshooting/gemini-30-second-timeout.md"),
    ("how do I rotate keys without downtime?", "keys/rotating-keys.md"),
    ("quota_exceeded monthly allowance", "errors/429-too-many-requests.md"),
    ("charged twice refund", "billing/payments-and-refunds.md"),
    # other languages: ranking still works where words overlap, accents fold away
    ("después del mantenimiento 401 invalid_api_key clave", "errors/401-unauthorized.md"),
    ("Fehler 402: Zahlung erforderlich, pâyment réquired", "errors/402-payment-required.md"),
    ("wir haben max_tokens auf 32000 erhöht, 400 invalid_request",
     "errors/400-404-request-errors.md"),
])
async def test_search_ranks_the_right_page_first(docs: Connector, query: str, first: str) -> None:
    result = await docs.run("search", {"query": query})
    assert refs(result)[0] == first
    scores = [e.data["score"] for e in result.evidence]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0


async def test_search_evidence_shape(docs: Connector) -> None:
    result = await docs.run("search", {"query": "402 payment required", "limit": 2})
    best = result.evidence[0]
    assert len(result.evidence) <= 2 and len(set(refs(result))) == len(result.evidence)
    assert best.source == "docs" and best.title == "402 Payment Required"
    assert best.url == "https://docs.gatewayco.com/errors/402-payment-required"
    assert "**402**" in best.summary and "past due" in best.summary
    assert best.data["path"] == best.ref and best.data["heading"] == "402 Payment Required"
    assert "Console → Billing → Invoices" in best.data["passage"]
    assert best.observed_at.tzinfo is not None and best.cite().ref == best.ref


async def test_search_path_prefix_keeps_to_a_folder(docs: Connector) -> None:
    for prefix in ("errors", "errors/"):
        found = refs(await docs.run("search", {"query": "timeout gemini", "path_prefix": prefix}))
        assert found and all(r.startswith("errors/") for r in found)
    assert refs(await docs.run("search", {"query": "gemini", "path_prefix": "err"})) == []


DOC_CASES = sorted(p.name for p in CASES.iterdir() if (p / "world" / "docs").is_dir())


@pytest.mark.parametrize("case", DOC_CASES)
async def test_every_case_docs_index(case: str) -> None:
    root = load_case(CASES / case).world.docs_root
    connector = make(root)
    assert refs(await connector.run("search", {"query": "rotate key grace period"}))[0] == \
        "keys/rotating-keys.md"
    got = await connector.run("get_page", {"path": "errors/402-payment-required.md"})
    assert got.evidence[0].title == "402 Payment Required"


INJECTIONS = ['"', '"402', "NEAR(", "NEAR(payment required, 2)", "title:402", "*", "payment*",
              "OR", "402 OR", ") OR 1=1 --", "'; DROP TABLE passages; --", "^402", "{title}: x",
              "402 AND NOT payment", '"" OR ""', "\x00 402", "(((", "passages MATCH '*'"]


@pytest.mark.parametrize("hostile", INJECTIONS)
async def test_fts_syntax_is_inert(docs: Connector, hostile: str) -> None:
    alone = await docs.run("search", {"query": hostile})
    assert alone.error is None
    mixed = await docs.run("search", {"query": f"402 payment required {hostile}"})
    assert refs(mixed)[0] == "errors/402-payment-required.md"
    after = await docs.run("search", {"query": "gemini timeout 30 seconds"})
    assert refs(after)[0] == "troubleshooting/gemini-30-second-timeout.md"
    assert len(refs(await docs.run("search", {"query": "supported models", "limit": 20}))) >= 2


def test_query_terms_are_bounded_and_quoted() -> None:
    words = " ".join(f"w{i:02d}" for i in range(40))
    assert len(query_terms(words)) == 16
    assert query_terms("a " + "x" * 41 + " ok OK Ok the or") == ["ok"]
    assert match_expression(query_terms('NEAR(a b) "x" title:402')) == '"near" OR "title" OR "402"'


@pytest.mark.parametrize("params", [
    {"query": "x" * 501}, {"query": ""}, {"query": "402", "limit": 0},
    {"query": "402", "limit": 21}, {"query": "402", "sql": "1"},
    {"query": "402", "path_prefix": "../errors"}, {"query": "402", "path_prefix": "/etc"},
    {"query": "402", "path_prefix": "errors\\x"}, {"query": "402", "path_prefix": "%2e%2e/x"},
])
async def test_search_refuses_bad_parameters(docs: Connector, params: dict[str, Any]) -> None:
    result = await docs.run("search", params)
    assert result.error is not None and result.error.kind == "invalid_parameters"
    assert result.attempts == 0


async def test_get_page(docs: Connector) -> None:
    result = await docs.run("get_page", {"path": "troubleshooting/gemini-30-second-timeout.md"})
    [got] = result.evidence
    assert got.ref == "troubleshooting/gemini-30-second-timeout.md"
    assert got.title == "Known issue: Gemini requests time out at 30 s"
    assert got.data["headings"] == [{"level": 1, "text": got.title}]
    assert '"stream": true' in got.data["text"] and "title:" not in got.data["text"]
    assert got.url == "https://docs.gatewayco.com/troubleshooting/gemini-30-second-timeout"
    missing = await docs.run("get_page", {"path": "errors/418-teapot.md"})
    assert missing.error is not None and missing.error.kind == "not_found"


@pytest.mark.parametrize("path", [
    "../../etc/passwd", "../docs/errors/401-unauthorized.md", "%2e%2e/%2e%2e/etc/passwd.md",
    "/etc/passwd", "errors/../../case.yaml", "errors\\401-unauthorized.md", "errors/\x00.md",
    ".git/config.md", "errors/401-unauthorized.md/../../x.md", "~/x.md", "x" * 600 + ".md",
    "../case.yaml", "errors/401-unauthorized.txt",
])
async def test_get_page_refuses_traversal(docs: Connector, path: str) -> None:
    result = await docs.run("get_page", {"path": path})
    assert result.error is not None and result.error.kind == "invalid_parameters"


async def test_symlinks_leaving_the_root_are_not_followed(tmp_path: Path, tree: Path) -> None:
    outside = page(tmp_path, "outside/secret.md", "# Secret\n\nzanzibar password hunter2\n")
    (tree / "leak.md").symlink_to(outside)
    (tree / "linked").symlink_to(outside.parent, target_is_directory=True)
    (tree / "alias").symlink_to(tree / "errors", target_is_directory=True)
    (tree / "loop").symlink_to(tree, target_is_directory=True)
    connector = make(tree)
    assert refs(await connector.run("search", {"query": "zanzibar hunter2"})) == []
    for path in ("leak.md", "linked/secret.md"):
        refused = await connector.run("get_page", {"path": path})
        assert refused.error is not None and refused.error.kind == "invalid_parameters"
    # a symlink inside the root is followed, and cited by the real page's path
    assert refs(await connector.run("search", {"query": "402 payment", "limit": 20})).count(
        "errors/402-payment-required.md") == 1
    via = await connector.run("get_page", {"path": "alias/401-unauthorized.md"})
    assert refs(via) == ["errors/401-unauthorized.md"]


async def test_incremental_reindex(tree: Path) -> None:
    connector = make(tree)
    assert refs(await connector.run("search", {"query": "sso saml"})) == []
    page(tree, "auth/sso.md", "---\ntitle: Single sign-on\n---\n# SSO\n\nSAML with Okta.\n")
    assert refs(await connector.run("search", {"query": "sso saml"})) == ["auth/sso.md"]
    page(tree, "auth/sso.md", "# SSO\n\nOIDC with Azure AD, much longer now.\n")
    assert refs(await connector.run("search", {"query": "saml"})) == []
    assert refs(await connector.run("search", {"query": "oidc"})) == ["auth/sso.md"]
    target = tree / "errors" / "402-payment-required.md"
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))  # touched, same content
    assert refs(await connector.run("search", {"query": "402 payment"}))[0] == \
        "errors/402-payment-required.md"
    (tree / "auth" / "sso.md").unlink()
    target.unlink()
    assert refs(await connector.run("search", {"query": "oidc"})) == []
    assert "errors/402-payment-required.md" not in refs(
        await connector.run("search", {"query": "402 payment required", "limit": 20}))


async def test_titles_hidden_folders_and_bad_files(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    page(root, "a/front.md", '---\ntitle: "Front title"\nowner: x\n---\n# Heading one\n\nalpha\n')
    page(root, "a/heading.md", "Intro bravo\n\n# First heading\n\n## Sub\n\nbravo\n")
    page(root, "a/plain-name.md", "charlie only text\n")
    page(root, "a/badyaml.md", "---\ntitle: [unclosed\n---\n# Fallback\n\ndelta\n")
    page(root, ".git/hidden.md", "# Hidden\n\nalpha bravo charlie delta\n")
    page(root, ".drafts/x.md", "# Draft\n\nalpha\n")
    page(root, "latin1.md", "# Caf\xe9\n\nalpha bravo\n".encode("latin-1"))
    page(root, "notes.txt", "alpha bravo charlie\n")
    connector = make(root)
    with capture_logs() as logs:
        result = await connector.run("search", {"query": "alpha bravo charlie delta", "limit": 20})
    titles = {e.ref: e.data["title"] for e in result.evidence}
    assert titles == {"a/front.md": "Front title", "a/heading.md": "First heading",
                      "a/plain-name.md": "plain-name", "a/badyaml.md": "Fallback"}
    assert any(e["event"] == "docs_page_skipped" and e["path"] == "latin1.md"
               and e["reason"] == "not_utf8" and e["log_level"] == "warning" for e in logs)
    bad = await connector.run("get_page", {"path": "latin1.md"})
    assert bad.error is not None and bad.error.kind == "bad_response"


async def test_a_title_match_outranks_a_body_match(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    page(root, "body.md", "# Delivery\n\nWe retry webhooks and log webhooks and more webhooks.\n")
    page(root, "title.md", "---\ntitle: Webhooks\n---\nSigned callbacks sent on events.\n")
    page(root, "other.md", "# Other\n\nNothing to see.\n")
    assert refs(await make(root).run("search", {"query": "webhooks"})) == ["title.md", "body.md"]


def test_passages_follow_headings_and_stay_bounded() -> None:
    body = "\n\n".join(f"Paragraph {i} " + "word " * 60 for i in range(30))
    text = f"# Top\n\nintro\n\n## Long\n\n{body}\n\n```\n# not a heading\n```\n\n## End\n\nbye\n"
    parsed = parse_page(text, "x.md")
    assert parsed.title == "Top"
    assert [h["text"] for h in parsed.headings] == ["Top", "Long", "End"]
    assert all(len(p.text) <= MAX_PASSAGE_CHARS for p in parsed.passages)
    assert sum(p.heading == "Long" for p in parsed.passages) > 5
    assert "# not a heading" in parsed.passages[-2].text and parsed.passages[-1].heading == "End"


async def test_concurrent_searches_share_one_index(docs: Connector) -> None:
    queries = ["402 payment", "gemini timeout", "rotate keys", "fallback"] * 5
    results = await asyncio.gather(*(docs.run("search", {"query": q}) for q in queries))
    assert all(r.error is None and r.evidence for r in results)


async def test_missing_root_is_disabled_and_a_vanished_root_is_down(tree: Path) -> None:
    disabled = build_connector("docs", DocsConfig(), resilience=fast(), metrics=Metrics())
    assert isinstance(disabled, DisabledConnector)
    assert (await disabled.health()).status == "disabled"
    result = await disabled.run("search", {"query": "402"})
    assert result.error is not None and result.error.kind == "disabled"
    connector = make(tree)
    assert (await connector.health()).status == "ok"
    shutil.rmtree(tree)
    assert (await connector.health()).status == "down"


async def test_slow_indexing_times_out(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(text: str, path: str) -> Any:
        time.sleep(0.15)
        return parse_page(text, path)

    monkeypatch.setattr("connectors.docs.client.parse_page", slow)
    connector = make(tree, fast(connect_s=0.01, response_s=0.05, total_budget_s=0.5))
    started = time.perf_counter()
    result = await connector.run("search", {"query": "402"})
    assert result.error is not None and result.error.kind == "timed_out"
    assert time.perf_counter() - started < 1.5


async def test_corrupt_index_file_is_set_aside_and_rebuilt(tree: Path, tmp_path: Path) -> None:
    index = tmp_path / "docs.sqlite"
    index.write_bytes(b"this is not a database\x00" * 200)
    connector = make(tree, index_path=index)
    assert refs(await connector.run("search", {"query": "402 payment"}))[0] == \
        "errors/402-payment-required.md"
    assert (tmp_path / "docs.sqlite.corrupt").read_bytes().startswith(b"this is not")
    await connector.aclose()
    # the rebuilt file is reused by a new process: nothing needs parsing again
    again = make(tree, index_path=index)
    assert refs(await again.run("search", {"query": "gemini"}))[0].startswith("troubleshooting/")
    await again.aclose()


async def test_a_foreign_database_is_left_alone(tree: Path, tmp_path: Path) -> None:
    index = tmp_path / "app.sqlite"
    with sqlite3.connect(index) as db:
        db.execute("CREATE TABLE customers (id INTEGER)")
    result = await make(tree, index_path=index).run("search", {"query": "402"})
    assert result.error is not None and result.error.code == "configuration_invalid"
    assert result.attempts == 1  # permanent: not retried
    with sqlite3.connect(index) as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["customers"]


async def test_breaker_opens_then_refuses_at_once(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = make(tree)
    moved = Path(shutil.move(tree, tmp_path / "elsewhere"))
    failed = await connector.run("search", {"query": "402"})
    assert failed.error is not None and failed.error.kind == "unavailable"
    assert failed.error.code == "connection_failed" and failed.attempts == 3
    shutil.move(moved, tree)  # the folder is back, but the breaker stays open for its cool-down
    calls: list[str] = []
    monkeypatch.setattr(DocsClient, "search",
                        lambda *a: calls.append("search") or [])  # type: ignore[func-returns-value]
    started = time.perf_counter()
    refused = await connector.run("search", {"query": "402"})
    assert refused.error is not None and refused.error.kind == "unavailable"
    assert refused.error.code == "circuit_open" and calls == []
    assert time.perf_counter() - started < 0.05
