"""Playbook files on disk: every version kept, one active version per playbook.

Layout::

    playbooks/library/<id>/<version>.yaml   every version ever released
    playbooks/active.yaml                   {<id>: <version>} in use now

A broken file is reported with its file, line and field; the other playbooks
keep working. Rolling back is setting the active version to the previous one.
"""

from __future__ import annotations

import difflib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from core.errors import InvalidRequestError, NotFoundError
from playbooks.schema import Playbook, version_tuple

DEFAULT_ROOT = Path(__file__).resolve().parent
# libyaml's parser when present: investigations read every playbook they route to
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# parsed files, shared by every store of the process, valid while size and mtime hold
_PARSED: dict[Path, tuple[int, int, Playbook]] = {}
_PARSED_LOCK = threading.Lock()


class PlaybookError(InvalidRequestError):
    """A playbook file is broken; says where."""

    code = "playbook_invalid"

    def __init__(self, file: Path, line: int | None, field: str, message: str) -> None:
        where = f"{file}:{line}" if line else str(file)
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}",
                         file=str(file), line=line, field=field)
        self.file, self.line, self.field = file, line, field


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """Return the 1-based line of the YAML node at `loc` (the closest parent found)."""
    best = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
            if child is None:
                key = next((k for k, _ in node.value if k.value == part), None)
                return key.start_mark.line + 1 if key is not None else best
            node = child
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and part < len(node.value):
            node = node.value[part]
        else:
            return best
        best = node.start_mark.line + 1
    return best


def load_file(path: Path) -> Playbook:
    """Parse and validate one playbook file, or raise `PlaybookError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlaybookError(path, None, "", f"cannot read: {exc}") from None
    try:
        raw: Any = yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise PlaybookError(path, line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}") \
            from None
    if not isinstance(raw, dict):
        raise PlaybookError(path, 1, "", "a playbook is a mapping")
    try:
        playbook = Playbook.model_validate(raw)
    except ValidationError as exc:
        node = yaml.compose(text)  # only now: for the line numbers of the error
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        field = ".".join(str(p) for p in loc)
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise PlaybookError(path, _line_of(node, loc), field, err["msg"] + more) from None
    expected = f"{playbook.version}.yaml"
    if path.name != expected or path.parent.name != playbook.id:
        raise PlaybookError(path, _line_of(yaml.compose(text), ("version",)), "version",
                            f"file must be library/{playbook.id}/{expected}")
    return playbook


@dataclass
class Loaded:
    """Every valid playbook version, and the files that failed."""

    versions: dict[str, dict[str, Playbook]]
    errors: list[PlaybookError]


class PlaybookStore:
    """Reads playbook versions and the active set; sets, promotes and rolls back."""

    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        self.root = root
        self.library = root / "library"
        self.active_file = root / "active.yaml"

    def _file(self, path: Path) -> Playbook:
        """Load a file, reusing the parse while its size and mtime are unchanged."""
        stat = path.stat()
        key = path.resolve()
        with _PARSED_LOCK:
            cached = _PARSED.get(key)
        if cached is not None and cached[:2] == (stat.st_mtime_ns, stat.st_size):
            return cached[2]
        playbook = load_file(path)
        with _PARSED_LOCK:
            _PARSED[key] = (stat.st_mtime_ns, stat.st_size, playbook)
        return playbook

    def load(self) -> Loaded:
        """Load every version of every playbook; broken files are collected, not raised."""
        versions: dict[str, dict[str, Playbook]] = {}
        errors: list[PlaybookError] = []
        for path in sorted(self.library.glob("*/*.yaml")):
            try:
                playbook = self._file(path)
            except PlaybookError as exc:
                errors.append(exc)
                continue
            versions.setdefault(playbook.id, {})[playbook.version] = playbook
        return Loaded(versions, errors)

    def active_versions(self) -> dict[str, str]:
        """Return {id: version} from active.yaml (empty when absent)."""
        if not self.active_file.is_file():
            return {}
        raw = yaml.safe_load(self.active_file.read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict):
            raise PlaybookError(self.active_file, 1, "", "must map playbook ids to versions")
        return {str(k): str(v) for k, v in raw.items()}

    def active(self, pins: dict[str, str] | None = None) -> list[Playbook]:
        """Return the active version of every valid playbook (`pins` override versions)."""
        loaded = self.load()
        for pid, version in (pins or {}).items():
            if version not in loaded.versions.get(pid, {}):
                raise NotFoundError(f"pinned playbook {pid}@{version} does not load")
        chosen = {**self.active_versions(), **(pins or {})}
        result = []
        for pid, versions in sorted(loaded.versions.items()):
            version = chosen.get(pid) or max(versions, key=version_tuple)
            if version in versions:  # a broken active version is left out; lint reports it
                result.append(versions[version])
        return result

    def get(self, pid: str, version: str | None = None) -> Playbook:
        """Return one playbook version (the active one when `version` is None)."""
        path = self.library / pid / f"{version}.yaml" if version else None
        if path is None:
            version = self.active_versions().get(pid)
            if version is None:
                versions = self.load().versions.get(pid, {})
                if not versions:
                    raise NotFoundError(f"no playbook {pid!r}")
                version = max(versions, key=version_tuple)
            path = self.library / pid / f"{version}.yaml"
        if not path.is_file():
            raise NotFoundError(f"no playbook {pid}@{version}")
        return self._file(path)

    def path(self, pid: str, version: str) -> Path:
        """Return the file of one version."""
        return self.library / pid / f"{version}.yaml"

    def set_active(self, pid: str, version: str) -> None:
        """Make `version` the active version of `pid` (it must load cleanly)."""
        load_file(self.path(pid, version))
        active = self.active_versions()
        active[pid] = version
        body = "# The version of each playbook in use. Change it with `sleuth playbooks`.\n"
        body += yaml.safe_dump(dict(sorted(active.items())), sort_keys=False)
        self.active_file.write_text(body, encoding="utf-8")

    def rollback(self, pid: str) -> tuple[str, str]:
        """Make the previous version active; return (from, to)."""
        current = self.get(pid).version
        older = [v for v in self.load().versions.get(pid, {})
                 if version_tuple(v) < version_tuple(current)]
        if not older:
            raise NotFoundError(f"{pid}@{current} has no earlier version to roll back to")
        previous = max(older, key=version_tuple)
        self.set_active(pid, previous)
        return current, previous

    def diff(self, pid_a: str, version_a: str, pid_b: str, version_b: str) -> str:
        """Return a unified diff between two playbook versions."""
        a, b = self.path(pid_a, version_a), self.path(pid_b, version_b)
        for path in (a, b):
            if not path.is_file():
                raise NotFoundError(f"no playbook file {path}")
        return "".join(difflib.unified_diff(
            a.read_text(encoding="utf-8").splitlines(keepends=True),
            b.read_text(encoding="utf-8").splitlines(keepends=True),
            fromfile=f"{pid_a}@{version_a}", tofile=f"{pid_b}@{version_b}",
        ))
