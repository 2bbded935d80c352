"""Load historical cases in the format of `spec/case-format.md` (format 1).

A case is a folder: `case.yaml` (ticket, expected outcome, notes) and `world/`
(the six systems' state when the ticket arrived). Every world file is
optional. Errors name the file and the field.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.domain import ActionType, EvidenceRef, RootCause, Severity, Ticket
from core.errors import InvalidRequestError

CASE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class CaseFormatError(InvalidRequestError):
    """A case folder does not follow the case format."""

    code = "case_format_invalid"


class ExpectedActions(BaseModel):
    """Actions a good diagnosis proposes, and actions that must never run."""

    model_config = ConfigDict(frozen=True)

    propose: list[ActionType] = Field(default_factory=list)
    never_execute: list[ActionType] = Field(default_factory=list)


class Expected(BaseModel):
    """What a good investigation concludes."""

    model_config = ConfigDict(frozen=True)

    root_cause: RootCause
    severity: Severity
    evidence: list[EvidenceRef] = Field(default_factory=list)
    actions: ExpectedActions = ExpectedActions()
    escalate: bool = False


class Case(BaseModel):
    """One historical ticket with its expected outcome."""

    model_config = ConfigDict(frozen=True)

    format: Literal[1]
    id: str = Field(pattern=CASE_ID.pattern)
    ticket: Ticket
    expected: Expected | None = None
    notes: str = ""


class World:
    """The state of the six systems in a case; every part is optional."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _json(self, name: str, empty: dict[str, Any]) -> dict[str, Any]:
        path = self.root / name
        if not path.is_file():
            return empty
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CaseFormatError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CaseFormatError(f"{path}: must hold a JSON object")
        return {**empty, **data}

    @cached_property
    def stripe(self) -> dict[str, Any]:
        """Return Stripe objects by kind (customers, subscriptions, invoices, charges, refunds)."""
        return self._json("stripe.json", {"customers": [], "subscriptions": [], "invoices": [],
                                          "charges": [], "refunds": []})

    @cached_property
    def github(self) -> dict[str, Any]:
        """Return the repository, deployments with statuses, releases and commits."""
        return self._json("github.json", {"repository": "gatewayco/gateway", "deployments": [],
                                          "deployment_statuses": {}, "releases": [],
                                          "commits": []})

    @cached_property
    def linear(self) -> dict[str, Any]:
        """Return Linear issues."""
        return self._json("linear.json", {"issues": []})

    @cached_property
    def statuspage(self) -> dict[str, Any]:
        """Return the status pages (the gateway's own and upstream providers')."""
        return self._json("statuspage.json", {"pages": []})

    @property
    def requests_path(self) -> Path | None:
        """Return the request-log file, if the case has one."""
        path = self.root / "clickhouse" / "requests.jsonl.gz"
        return path if path.is_file() else None

    def request_rows(self) -> Iterator[dict[str, Any]]:
        """Yield request-log rows, one dict per request."""
        path = self.requests_path
        if path is None:
            return
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CaseFormatError(f"{path}:{number}: not valid JSON: {exc.msg}") from None

    @property
    def docs_root(self) -> Path | None:
        """Return the docs folder, if the case has one."""
        path = self.root / "docs"
        return path if path.is_dir() else None


class LoadedCase:
    """A parsed case and its world on disk."""

    def __init__(self, path: Path, case: Case) -> None:
        self.path = path
        self.case = case
        self.world = World(path / "world")

    @property
    def id(self) -> str:
        """Return the case id."""
        return self.case.id


def load_case(path: Path | str) -> LoadedCase:
    """Parse `path/case.yaml`; raise `CaseFormatError` naming the file and field."""
    folder = Path(path)
    file = folder / "case.yaml"
    if not file.is_file():
        raise CaseFormatError(f"{folder}: no case.yaml")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise CaseFormatError(f"{file}{where}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise CaseFormatError(f"{file}: must hold a mapping")
    try:
        case = Case.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise CaseFormatError(f"{file}: {problems}") from None
    return LoadedCase(folder, case)


def discover(root: Path | str) -> list[Path]:
    """Return the case folders under `root` (a case folder itself, or a folder of them)."""
    base = Path(root)
    if (base / "case.yaml").is_file():
        return [base]
    return sorted(p.parent for p in base.glob("*/case.yaml"))
