"""The docs "client": the pages on disk and their SQLite FTS5 index, behind one lock.

Calls are synchronous (run them with `asyncio.to_thread`) and take `stop_at`, a
`time.monotonic()` instant: work past it stops (between files, or inside SQLite via
a progress handler) so a timed-out attempt does not keep the index busy. SQLite and
file-system failures leave here as `core.errors` types. The index is a cache of the
pages: a corrupt or foreign-schema file is set aside (`<name>.corrupt`) and rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from connectors.docs.index import (
    MAX_PAGE_BYTES,
    PAGE_PATH,
    PageFile,
    ParsedPage,
    inside,
    parse_page,
    walk_pages,
)
from core.errors import (
    BadResponseError,
    ConfigurationError,
    ConnectionFailedError,
    InvalidRequestError,
    NotFoundError,
    ResponseTimeoutError,
    SleuthError,
)
from core.telemetry import get_logger

log = get_logger("sleuth.connectors.docs")

SCHEMA_VERSION = "1"
# bm25 weights per column (path, title, heading, body, mtime): a title hit counts most.
# Every value is bound: the MATCH expression, the prefix and the row limit.
_SEARCH = (
    "SELECT path, title, heading, body, bm25(passages, 0.0, 5.0, 2.5, 1.0, 0.0) AS score,"
    " snippet(passages, 3, '**', '**', '…', 24) FROM passages WHERE passages MATCH :match"
    " AND (:prefix IS NULL OR path = :prefix OR substr(path, 1, :n) = :prefix || '/')"
    " ORDER BY score LIMIT :rows"
)
_SCHEMA = (
    "CREATE TABLE docs_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE pages (path TEXT PRIMARY KEY, title TEXT, mtime_ns INTEGER NOT NULL,"
    " size INTEGER NOT NULL, sha256 TEXT NOT NULL, indexed INTEGER NOT NULL)",
    "CREATE VIRTUAL TABLE passages USING fts5(path UNINDEXED, title, heading, body,"
    " mtime UNINDEXED, tokenize = 'porter unicode61 remove_diacritics 2')",
)


@dataclass(frozen=True)
class Hit:
    """One matching passage, best first; `score` is -bm25 (higher is better)."""

    path: str
    title: str
    heading: str
    passage: str
    snippet: str
    score: float


def _corrupt(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))


class DocsClient:
    """The pages under `root` and their full-text index (in memory or at `index_path`)."""

    def __init__(self, root: Path, index_path: Path | None, *,
                 resync_interval_s: float = 0.0) -> None:
        self.root = root
        self.index_path = index_path
        self.resync_interval_s = resync_interval_s
        self._synced_at: float | None = None  # monotonic time of the last complete sync
        self._lock = threading.Lock()  # one connection, one user at a time
        self._conn: sqlite3.Connection | None = None

    def root_real(self) -> Path:
        """Return the root with symlinks resolved; raise if it is gone or unreadable."""
        try:
            real = self.root.resolve(strict=True)
        except (OSError, RuntimeError):
            raise ConnectionFailedError(f"docs: root folder {self.root} not found") from None
        if not real.is_dir() or not os.access(real, os.R_OK | os.X_OK):
            raise ConnectionFailedError(f"docs: root {self.root} is not a readable folder")
        return real

    def close(self) -> None:
        """Close the index connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def page_count(self, stop_at: float) -> int:
        """Check the root and the index; return the number of indexed pages."""
        self.root_real()
        with self._session(stop_at) as conn:
            return int(conn.execute("SELECT count(*) FROM pages WHERE indexed").fetchone()[0])

    def search(self, match: str, prefix: str | None, rows: int, stop_at: float) -> list[Hit]:
        """Bring the index up to date, then return up to `rows` passages matching `match`."""
        # a prefix matches whole path segments: "errors" is errors/… but not errors-old/…
        args = {"match": match, "prefix": prefix, "n": len(prefix or "") + 1, "rows": rows}
        with self._session(stop_at) as conn:
            fresh = self._synced_at is not None and \
                time.monotonic() - self._synced_at < self.resync_interval_s
            if not fresh:  # walking the folder on every search costs more than the search
                self._sync(conn, stop_at)
                self._synced_at = time.monotonic()
            found = conn.execute(_SEARCH, args).fetchall()
        return [Hit(p, t, h, b, s.strip(), round(-float(r), 4)) for p, t, h, b, r, s in found]

    def read_page(self, rel: str) -> tuple[str, ParsedPage, str]:
        """Read a page (validated relative path) resolving inside the root: (path, page, text).

        The path returned is the real file's, as search cites it, even when `rel` goes
        through a symlink inside the root.
        """
        root = self.root_real()
        candidate = root / rel
        real = inside(root, candidate)
        if real is None:
            if os.path.lexists(candidate) and candidate.resolve().exists():
                raise InvalidRequestError(f"docs: {rel} leads outside the docs root")
            raise NotFoundError(f"docs: no page {rel}")
        canonical = real.relative_to(root).as_posix()
        if not real.is_file() or not PAGE_PATH.fullmatch(canonical):
            raise NotFoundError(f"docs: {rel} is not a page")
        try:
            if real.stat().st_size > MAX_PAGE_BYTES:
                raise BadResponseError(f"docs: {rel} is larger than {MAX_PAGE_BYTES} bytes")
            text = real.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise BadResponseError(f"docs: {rel} is not UTF-8 text") from None
        except OSError as exc:
            raise ConnectionFailedError(f"docs: cannot read {rel}: {exc.strerror}") from None
        return canonical, parse_page(text, canonical), text

    @contextmanager
    def _session(self, stop_at: float) -> Iterator[sqlite3.Connection]:
        if not self._lock.acquire(timeout=max(0.0, stop_at - time.monotonic())):
            raise ResponseTimeoutError("docs: the index stayed busy past the attempt's timeout")
        try:
            conn = self._connection()
            # SQLite calls this every 2,000 steps; non-zero aborts the statement ("interrupted")
            conn.set_progress_handler(lambda: int(time.monotonic() > stop_at), 2_000)
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.rollback()
                conn.set_progress_handler(None, 0)
        except sqlite3.Error as exc:
            raise self._translate(exc) from None
        finally:
            self._lock.release()

    def _translate(self, exc: sqlite3.Error) -> SleuthError:
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_INTERRUPT":  # our progress handler
            return ResponseTimeoutError("docs: index query stopped at the attempt's timeout")
        if _corrupt(exc):
            log.warning("docs_index_corrupt", path=str(self.index_path), error=str(exc))
            self._discard()  # the retry rebuilds it from the pages
        return ConnectionFailedError(f"docs: index error: {exc}")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self._conn = self._open()
            except sqlite3.Error as exc:
                if not _corrupt(exc):
                    raise
                log.warning("docs_index_corrupt", path=str(self.index_path), error=str(exc))
                self._discard()
                self._conn = self._open()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        target = ":memory:" if self.index_path is None else str(self.index_path)
        conn = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        try:
            if self.index_path is not None:
                conn.execute("PRAGMA journal_mode=WAL")  # fails here on a garbage file
                conn.execute("PRAGMA synchronous=NORMAL")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if tables and "docs_meta" not in tables:
                raise ConfigurationError(
                    f"docs: index_path {self.index_path} holds a database that is not a docs "
                    "index; point it at a new file")
            meta = dict(conn.execute("SELECT key, value FROM docs_meta")) if tables else {}
            root = str(self.root.resolve())
            if meta != {"schema": SCHEMA_VERSION, "root": root}:
                # other schema or other root: the cached rows cannot be trusted, start over
                for table in ("passages", "pages", "docs_meta"):
                    conn.execute(f"DROP TABLE IF EXISTS {table}")
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.executemany("INSERT INTO docs_meta VALUES (?, ?)",
                                 [("schema", SCHEMA_VERSION), ("root", root)])
        except BaseException:
            conn.close()
            raise
        return conn

    def _discard(self) -> None:
        self._synced_at = None  # a new index must be filled again
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.index_path is None:
            return
        try:
            if self.index_path.exists():
                aside = self.index_path.with_name(self.index_path.name + ".corrupt")
                self.index_path.replace(aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.index_path}{suffix}").unlink(missing_ok=True)
        except OSError as exc:
            raise ConnectionFailedError(f"docs: cannot set aside a corrupt index: {exc}") from None

    def _sync(self, conn: sqlite3.Connection, stop_at: float) -> None:
        root = self.root_real()
        known = {row[0]: row[1:] for row in
                 conn.execute("SELECT path, mtime_ns, size, sha256 FROM pages")}
        present: set[str] = set()
        for page in walk_pages(root):
            if time.monotonic() > stop_at:  # what is committed so far stays; resume next time
                raise ResponseTimeoutError("docs: indexing stopped at the attempt's timeout")
            present.add(page.path)
            old = known.get(page.path)
            if old is None or (old[0], old[1]) != (page.mtime_ns, page.size):
                self._index_file(conn, page, old[2] if old else None)
        self.root_real()  # a root that vanished mid-walk must not empty the index
        for gone in known.keys() - present:
            conn.execute("BEGIN")
            conn.execute("DELETE FROM passages WHERE path = ?", (gone,))
            conn.execute("DELETE FROM pages WHERE path = ?", (gone,))
            conn.execute("COMMIT")

    def _index_file(self, conn: sqlite3.Connection, page: PageFile, old_sha: str | None) -> None:
        parsed: ParsedPage | None = None
        digest = f"size:{page.size}"
        if page.size > MAX_PAGE_BYTES:
            log.warning("docs_page_skipped", path=page.path, reason="too_large", size=page.size)
        else:
            try:
                raw = page.real.read_bytes()
            except OSError as exc:
                log.warning("docs_page_unreadable", path=page.path, error=exc.strerror)
                return  # keep what was indexed; the next sync tries again
            digest = hashlib.sha256(raw).hexdigest()
            if digest == old_sha:  # touched, not changed: only remember the new stat
                conn.execute("UPDATE pages SET mtime_ns = ?, size = ? WHERE path = ?",
                             (page.mtime_ns, page.size, page.path))
                return
            try:
                parsed = parse_page(raw.decode("utf-8"), page.path)
            except UnicodeDecodeError:
                log.warning("docs_page_skipped", path=page.path, reason="not_utf8")
        conn.execute("BEGIN")
        if old_sha is not None:
            conn.execute("DELETE FROM passages WHERE path = ?", (page.path,))
        # a skipped page is remembered (indexed=0) so it is not re-read until it changes
        conn.execute("INSERT OR REPLACE INTO pages VALUES (?, ?, ?, ?, ?, ?)",
                     (page.path, parsed.title if parsed else None, page.mtime_ns, page.size,
                      digest, int(parsed is not None)))
        if parsed is not None:
            mtime = page.mtime_ns // 1_000_000_000
            conn.executemany("INSERT INTO passages VALUES (?, ?, ?, ?, ?)",
                             [(page.path, parsed.title, p.heading, p.text, mtime)
                              for p in parsed.passages])
        conn.execute("COMMIT")
