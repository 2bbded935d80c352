"""The docs connector: ranked full-text search over product documentation, and whole pages.

`search` answers with one evidence item per page (ranked by its best passage, whose
heading, passage and snippet are in `data`; up to two further matching passages of the
same page are in `data["more"]`), so a page is cited once by its path. User text never
reaches SQL or FTS5 syntax: it is cut into words, each quoted as an FTS5 string, and the
expression is bound as a parameter.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from pydantic import Field, field_validator

from connectors.base import Connector, Params, operation
from connectors.docs.client import DocsClient, Hit
from connectors.docs.config import DocsConfig
from connectors.docs.index import (
    PAGE_SUFFIXES,
    ParsedPage,
    match_expression,
    query_terms,
    valid_page_path,
)
from core.domain import Evidence
from core.errors import ConfigurationError
from core.resilience import Attempt

MAX_PAGE_TEXT = 20_000
# matching passages read per requested page: enough for a page to be represented by its best
_ROWS_PER_RESULT = 8
_MORE_PER_PAGE = 2


class SearchParams(Params):
    """Words to look for, how many pages to return, and an optional folder to stay in."""

    query: str = Field(min_length=1, max_length=500)
    limit: int = Field(5, ge=1, le=20)
    path_prefix: str | None = Field(None, min_length=1, max_length=512)

    @field_validator("path_prefix")
    @classmethod
    def _safe_prefix(cls, value: str | None) -> str | None:
        return None if value is None else valid_page_path(value.rstrip("/"), page=False)


class PageParams(Params):
    """The page's path under the docs root, e.g. `errors/402-payment-required.md`."""

    path: str = Field(min_length=1, max_length=512)

    @field_validator("path")
    @classmethod
    def _safe_path(cls, value: str) -> str:
        return valid_page_path(value, page=True)


def _clean(text: str, limit: int) -> str:
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


class DocsConnector(Connector):
    """Searches and reads the markdown pages of the product documentation."""

    name = "docs"
    config_model = DocsConfig
    config: DocsConfig

    def __init__(self, config: DocsConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._docs: DocsClient | None = None  # opened on first use, in a worker thread

    def _client(self) -> DocsClient:
        if self._docs is None:
            if self.config.root is None:  # registry keeps a root-less config disabled
                raise ConfigurationError("docs: no root folder configured")
            self._docs = DocsClient(self.config.root, self.config.index_path,
                                    resync_interval_s=self.config.resync_interval_s)
        return self._docs

    def _url(self, path: str) -> str | None:
        if self.config.base_url is None:
            return None
        stem = next((path[: -len(s)] for s in PAGE_SUFFIXES if path.lower().endswith(s)), path)
        return f"{self.config.base_url}/{stem}"

    @operation("search", SearchParams,
               "Rank documentation pages for some words (BM25); one evidence item per page.")
    async def search(self, params: SearchParams, attempt: Attempt) -> list[Evidence]:
        """Return the best-matching pages, each with its best passage and a snippet."""
        terms = query_terms(params.query)
        if not terms:  # only punctuation or one-letter words: nothing to look for
            return []
        stop_at = time.monotonic() + attempt.timeout_s
        hits = await asyncio.to_thread(
            self._client().search, match_expression(terms), params.path_prefix,
            params.limit * _ROWS_PER_RESULT, stop_at)
        pages: dict[str, list[Hit]] = {}
        for hit in hits:  # best first, so a page's first hit is its best
            pages.setdefault(hit.path, []).append(hit)
        return [self._hit_evidence(group) for group in list(pages.values())[: params.limit]]

    def _hit_evidence(self, group: list[Hit]) -> Evidence:
        best = group[0]
        title = best.title if best.heading in ("", best.title) else f"{best.title} — {best.heading}"
        more = [{"heading": h.heading, "score": h.score, "snippet": _clean(h.snippet, 300)}
                for h in group[1: 1 + _MORE_PER_PAGE]]
        return Evidence(
            source="docs", ref=best.path, title=_clean(title, 200),
            summary=_clean(best.snippet or best.passage, 400) or best.title,
            data={"path": best.path, "title": best.title, "heading": best.heading,
                  "score": best.score, "passage": best.passage,
                  "snippet": _clean(best.snippet, 400), "more": more},
            url=self._url(best.path), observed_at=self.now())

    @operation("get_page", PageParams, "Read one documentation page by its path.")
    async def get_page(self, params: PageParams, attempt: Attempt) -> list[Evidence]:
        """Return the page (text bounded to 20,000 chars) with its title and headings."""
        path, page, text = await asyncio.to_thread(self._client().read_page, params.path)
        return [self._page_evidence(path, page, text)]

    def _page_evidence(self, path: str, page: ParsedPage, text: str) -> Evidence:
        first = next((p.text for p in page.passages if p.text), "")
        return Evidence(
            source="docs", ref=path, title=_clean(page.title, 200),
            summary=_clean(first, 300) or page.title,
            data={"path": path, "title": page.title, "text": page.body[:MAX_PAGE_TEXT],
                  "truncated": len(page.body) > MAX_PAGE_TEXT, "chars": len(text),
                  "headings": page.headings[:200]},
            url=self._url(path), observed_at=self.now())

    async def _ping(self, attempt: Attempt) -> None:
        """Check that the root is a readable folder and the index opens."""
        stop_at = time.monotonic() + attempt.timeout_s
        await asyncio.to_thread(self._client().page_count, stop_at)

    async def aclose(self) -> None:
        """Close the index."""
        if self._docs is not None:
            await asyncio.to_thread(self._docs.close)
