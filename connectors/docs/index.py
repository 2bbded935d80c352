"""Reading the docs tree: safe walking, markdown pages into passages, query terms.

Nothing here touches SQLite; `client.py` stores what these functions produce.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

PAGE_SUFFIXES = (".md", ".markdown")
MAX_PASSAGE_CHARS = 1_200
MAX_PAGE_BYTES = 2_000_000
MAX_PAGES = 20_000
MAX_DEPTH = 32
MAX_TERMS = 16

# A relative POSIX path: segments of word characters, dots, dashes and spaces, none starting
# with a dot (so no "..", no hidden folders) and no "%", "\\", NUL or leading "/".
_SEGMENT = r"[^\W][\w.\- ]{0,127}"
PAGE_PATH = re.compile(rf"^{_SEGMENT}(?:/{_SEGMENT}){{0,31}}$")
# English glue words: in nearly every passage, so they only add noise hits (e.g. an injected
# "OR" would otherwise match every page). The docs are written in English.
_STOP_TEXT = """an and are as at be but by can do does for from has have if in is it its my no not
of on or our that the this to was we were will with you your"""
STOP_WORDS = frozenset(_STOP_TEXT.split())
_WORD = re.compile(r"[^\W_]+")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def valid_page_path(value: str, *, page: bool) -> str:
    """Return `value` as a safe relative POSIX path, or raise ValueError."""
    if "\x00" in value or "\\" in value or value.startswith("/"):
        raise ValueError("must be a relative POSIX path (no NUL, backslash or leading '/')")
    if not PAGE_PATH.fullmatch(value) or ".." in PurePosixPath(value).parts:
        raise ValueError("must be a relative path of plain names (no '..', '%', hidden parts)")
    if page and not value.lower().endswith(PAGE_SUFFIXES):
        raise ValueError(f"must name a markdown page ({', '.join(PAGE_SUFFIXES)})")
    return value


def inside(root_real: Path, candidate: Path) -> Path | None:
    """Return `candidate` with symlinks resolved if it stays inside `root_real`, else None."""
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return None
    return real if real == root_real or real.is_relative_to(root_real) else None


@dataclass(frozen=True)
class PageFile:
    """A markdown file found under the root, with what change detection needs."""

    path: str  # relative to the root, POSIX
    real: Path
    mtime_ns: int
    size: int


def walk_pages(root_real: Path) -> Iterator[PageFile]:
    """Yield the markdown pages under the root, skipping hidden parts and escaping symlinks.

    A page's path is that of its real file under the root, so a page reached through a
    symlink inside the root is listed once, under its own name.
    """
    seen: set[Path] = {root_real}
    pages: set[str] = set()
    stack: list[tuple[Path, int]] = [(root_real, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue  # unreadable folder: its pages are treated as gone
        for entry in entries:
            if entry.name.startswith("."):  # .git, .obsidian, editor droppings
                continue
            real = inside(root_real, Path(entry.path))
            if real is None:  # a symlink leading out of the root is never followed
                continue
            if real.is_dir():
                if real not in seen and depth < MAX_DEPTH:
                    seen.add(real)  # a symlinked folder is read once; loops end here
                    stack.append((real, depth + 1))
                continue
            rel = real.relative_to(root_real).as_posix()
            # a name get_page could not be asked for (hidden part, odd characters) is skipped
            if rel in pages or not rel.lower().endswith(PAGE_SUFFIXES) or not real.is_file():
                continue
            if not PAGE_PATH.fullmatch(rel):
                continue
            pages.add(rel)
            stat = real.stat()
            yield PageFile(rel, real, stat.st_mtime_ns, stat.st_size)
            if len(pages) >= MAX_PAGES:
                return


@dataclass
class Passage:
    """A bounded piece of one heading section."""

    heading: str
    text: str


@dataclass
class ParsedPage:
    """A page split for the index."""

    title: str
    headings: list[dict[str, Any]] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    body: str = ""


def _front_title(text: str) -> tuple[str | None, str]:
    match = _FRONT.match(text)
    if match is None:
        return None, text
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        meta = None  # broken front matter: the page is still worth indexing
    title = meta.get("title") if isinstance(meta, dict) else None
    title = str(title).strip() if isinstance(title, str | int | float) else None
    return title or None, text[match.end():]


def _chunks(text: str, limit: int = MAX_PASSAGE_CHARS) -> Iterator[str]:
    """Split text into pieces of at most `limit` chars at paragraph, line or word breaks."""
    text = text.strip()
    while len(text) > limit:
        window = text[:limit]
        cut = max(window.rfind("\n\n"), 0)
        if cut < limit // 3:
            cut = max(window.rfind("\n"), window.rfind(". ") + 1, window.rfind(" "))
        if cut < limit // 3:
            cut = limit  # one long word: cut it
        yield text[:cut].strip()
        text = text[cut:].strip()
    if text:
        yield text


def parse_page(text: str, path: str) -> ParsedPage:
    """Split a markdown page into its title, headings and passages of bounded size."""
    text = unicodedata.normalize("NFC", text.lstrip("\ufeff"))
    title, body = _front_title(text)
    sections: list[tuple[str, list[str]]] = [("", [])]
    headings: list[dict[str, Any]] = []
    fence: str | None = None
    for line in body.splitlines():
        opener = _FENCE.match(line)
        if opener:  # headings inside fenced code are code, not structure
            mark = opener.group(1)
            if fence is None:
                fence = mark[0] * 3
            elif mark.startswith(fence):
                fence = None
        match = None if fence or opener else _HEADING.match(line)
        if match:
            level, heading = len(match.group(1)), match.group(2).strip()
            headings.append({"level": level, "text": heading})
            if title is None and level == 1:
                title = heading
            sections.append((heading, []))
        else:
            sections[-1][1].append(line)
    title = title or PurePosixPath(path).stem
    page = ParsedPage(title=title[:300], headings=headings, body=body.strip())
    for heading, lines in sections:
        page.passages.extend(Passage(heading, piece) for piece in _chunks("\n".join(lines)))
    if not page.passages:  # a page of headings only is still findable by them
        page.passages.append(Passage(headings[0]["text"] if headings else "", ""))
    return page


def query_terms(text: str) -> list[str]:
    """Return up to 16 distinct words (letters/digits, 2..40 chars, no stop words) of a query."""
    terms: list[str] = []
    for word in _WORD.findall(unicodedata.normalize("NFKC", text)):
        key = word.casefold()
        if 2 <= len(key) <= 40 and key not in terms and key not in STOP_WORDS:
            terms.append(key)
            if len(terms) == MAX_TERMS:
                break
    return terms


def match_expression(terms: list[str]) -> str:
    """Quote each term as an FTS5 string and OR them (terms hold no quotes; escape anyway)."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
