"""The playbook schema: what support engineers write in YAML, validated by pydantic.

A playbook names the tickets it applies to, the read-only queries to run, the
signals to read from their evidence, and the hypotheses those signals support
(the rule tier), plus guidance for models, reply templates and actions.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.domain import ActionType, RootCause, Severity, SourceName

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
IDENT = r"^[a-z][a-z0-9_-]{0,63}$"
TEMPLATE = re.compile(r"^\{\{\s*([a-z_][a-z0-9_.]*)\s*\}\}$")
INLINE = re.compile(r"\{\{\s*([a-z_][a-z0-9_.]*)\s*\}\}")
CATEGORIES = ("billing", "errors", "auth", "performance", "outage", "howto", "any")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AppliesTo(_Strict):
    """Which tickets a playbook covers: by category of the intake classifier."""

    categories: list[Literal["billing", "errors", "auth", "performance", "outage", "howto",
                             "any"]] = Field(min_length=1)


class Window(_Strict):
    """The time window of a query, relative to the ticket's creation."""

    before_hours: float = Field(24, ge=0, le=24 * 31)
    after_minutes: float = Field(0, ge=0, le=24 * 60)
    period_start: bool = Field(False, description="start at the first of the ticket's month")


class Query(_Strict):
    """One read-only connector operation with parameter templates."""

    id: str = Field(pattern=IDENT)
    source: SourceName
    operation: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    params: dict[str, Any] = Field(default_factory=dict)
    window: Window | None = None

    @field_validator("params")
    @classmethod
    def _templates(cls, params: dict[str, Any]) -> dict[str, Any]:
        roots = ("ticket", "customer", "window", "results")
        for key, value in params.items():
            if not isinstance(value, str) or "{{" not in value:
                continue
            paths = INLINE.findall(value)
            if not paths or value.count("{{") != len(paths):
                raise ValueError(f"param {key!r}: templates are written '{{{{ path }}}}'")
            for path in paths:
                if path.split(".")[0] not in roots:
                    raise ValueError(f"param {key!r}: {path!r} must start with one of "
                                     f"{', '.join(roots)}")
        return params

    def templates(self) -> list[str]:
        """Return the context paths the params refer to."""
        return [path for value in self.params.values() if isinstance(value, str)
                for path in INLINE.findall(value)]

    def depends_on(self) -> list[str]:
        """Return the ids of the queries whose results this query's params use."""
        return sorted({p.split(".")[1] for p in self.templates()
                       if p.startswith("results.") and p.count(".") >= 1})


Scalar = str | int | float | bool | None


class Match(_Strict):
    """A test on one field of an evidence item (exactly one operator)."""

    eq: Scalar = None
    ne: Scalar = None
    in_: list[Scalar] | None = Field(None, alias="in")
    gte: float | None = None
    lte: float | None = None
    gt: float | None = None
    lt: float | None = None
    contains: str | None = None
    exists: bool | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one(self) -> Match:
        given = [k for k in self.model_fields_set if k != "in_" or self.in_ is not None]
        if len(given) != 1:
            raise ValueError("a match has exactly one of eq, ne, in, gte, lte, gt, lt, "
                             "contains, exists")
        return self


class Selector(_Strict):
    """Evidence items of one query, filtered by field tests."""

    query: str = Field(pattern=IDENT)
    where: dict[str, Match | Scalar] = Field(default_factory=dict)

    def matches(self) -> dict[str, Match]:
        """Return the filters with plain values turned into equality tests."""
        return {path: value if isinstance(value, Match) else Match(eq=value)
                for path, value in self.where.items()}


class Signal(_Strict):
    """A fact read from the evidence; `kind` says how.

    - exists: at least `min_count` selected items
    - compare: `agg` of `field` over selected items, compared by `op` with `value`
    - after: the time in `field` of `of` is within `minutes` after the time in
      `reference_field` of `reference` (e.g. errors began soon after a deploy);
      `slack_minutes` lets it start that much before (status pages lag), and
      `join` requires the two items to share a value (e.g. the same provider)
    - all/any/none: combinations of other signals
    """

    id: str = Field(pattern=IDENT)
    description: str = ""
    kind: Literal["exists", "compare", "after", "all", "any", "none"]
    select: Selector | None = None
    min_count: int = Field(1, ge=1)
    field: str | None = None
    agg: Literal["max", "min", "sum", "count", "first"] = "max"
    op: Literal[">", ">=", "<", "<=", "==", "!="] | None = None
    value: float | str | None = None
    of: Selector | None = None
    reference: Selector | None = None
    reference_field: str | None = None
    minutes: float | None = Field(None, gt=0)
    slack_minutes: float = Field(0, ge=0)
    join: dict[Literal["of", "reference"], str] | None = None
    signals: list[str] = Field(default_factory=list)
    cite_limit: int | None = Field(None, ge=1, description="cite at most this many items")

    @model_validator(mode="after")
    def _shape(self) -> Signal:
        need: dict[str, tuple[str, ...]] = {
            "exists": ("select",),
            "compare": ("select", "field", "op", "value"),
            "after": ("of", "field", "reference", "reference_field", "minutes"),
        }
        missing = [f for f in need.get(self.kind, ()) if getattr(self, f) is None]
        if self.kind in ("all", "any", "none") and not self.signals:
            missing.append("signals")
        if self.join is not None and set(self.join) != {"of", "reference"}:
            missing.append("join.of and join.reference")
        if missing:
            raise ValueError(f"a {self.kind} signal needs {', '.join(missing)}")
        return self


class ActionSpec(_Strict):
    """An action a hypothesis proposes (the taxonomy decides what happens to it)."""

    type: ActionType
    reason: str = ""
    params: dict[str, Any] = Field(default_factory=dict)


class Hypothesis(_Strict):
    """A root cause the rule tier scores from signals."""

    id: str = Field(pattern=IDENT)
    root_cause: RootCause
    severity: Severity
    require: list[str] = Field(default_factory=list, description="signals that must all hold")
    exclude: list[str] = Field(default_factory=list, description="signals that rule it out")
    weights: dict[str, float] = Field(default_factory=dict, description="signal → score")
    base: float = Field(0.0, ge=-1, le=1)
    cite: list[str] = Field(default_factory=list, description="signals whose evidence is cited")
    reply: str = Field(description="name of a reply template")
    actions: list[ActionSpec] = Field(default_factory=list)
    escalate: bool = False


class Playbook(_Strict):
    """One playbook file."""

    id: str = Field(pattern=IDENT)
    version: str
    owner: str = Field(min_length=3)
    title: str = Field(min_length=3)
    applies_to: AppliesTo
    queries: list[Query] = Field(default_factory=list)
    signals: list[Signal] = Field(default_factory=list)
    hypotheses: list[Hypothesis] = Field(min_length=1)
    guidance: str = ""
    replies: dict[str, str] = Field(default_factory=dict)

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str) -> str:
        if not SEMVER.match(value):
            raise ValueError("version must be semantic: MAJOR.MINOR.PATCH, e.g. 1.2.0")
        return value

    @model_validator(mode="after")
    def _references(self) -> Playbook:
        problems: list[str] = []
        queries = [q.id for q in self.queries]
        signals = [s.id for s in self.signals]
        for kind, ids in (("query", queries), ("signal", signals)):
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            if repeated:
                problems.append(f"{kind} ids repeated: {', '.join(repeated)}")
        for q in self.queries:
            for dep in q.depends_on():
                if dep not in queries or dep == q.id:
                    problems.append(f"query {q.id}: uses results of unknown query {dep!r}")
        for s in self.signals:
            for sel in (s.select, s.of, s.reference):
                if sel is not None and sel.query not in queries:
                    problems.append(f"signal {s.id}: unknown query {sel.query!r}")
            for ref in s.signals:
                if ref not in signals:
                    problems.append(f"signal {s.id}: unknown signal {ref!r}")
        for h in self.hypotheses:
            for ref in (*h.require, *h.exclude, *h.weights, *h.cite):
                if ref not in signals:
                    problems.append(f"hypothesis {h.id}: unknown signal {ref!r}")
            if h.reply not in self.replies:
                problems.append(f"hypothesis {h.id}: unknown reply template {h.reply!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def key(self) -> str:
        """Return `id@version`."""
        return f"{self.id}@{self.version}"


def version_tuple(version: str) -> tuple[int, int, int]:
    """Return a semantic version as a sortable tuple."""
    major, minor, patch = (int(p) for p in version.split("."))
    return major, minor, patch
