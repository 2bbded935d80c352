"""The autonomy taxonomy: which level each action type has, who may approve it, its limits.

Layout, versioned like playbooks::

    governance/taxonomy/<version>.yaml   every version ever released
    governance/taxonomy/active.yaml      {active: <version>}

Only an action's type decides how it is handled; a type the taxonomy does not list is
forbidden. The schema refuses a file that would let customer-visible, external-write or
financial actions run without a person, or financial approvals without a reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.domain import ActionType
from core.errors import ConfigurationError, NotFoundError
from playbooks.schema import SEMVER, version_tuple
from playbooks.store import _line_of

DEFAULT_ROOT = Path(__file__).resolve().parent / "taxonomy"

Level = Literal["read_only", "internal", "customer_visible", "external_write", "financial",
                "forbidden"]
LEVELS: tuple[Level, ...] = get_args(Level)
Role = Literal["support_agent", "support_lead", "billing_admin", "oncall_engineer", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
# The spec's floor: these levels always need a person, whatever a taxonomy file says.
APPROVAL_LEVELS: frozenset[Level] = frozenset({"customer_visible", "external_write", "financial"})


class TaxonomyError(ConfigurationError):
    """A taxonomy file is broken or unsafe; says where."""

    code = "taxonomy_invalid"

    def __init__(self, file: Path, line: int | None, field: str, message: str) -> None:
        where = f"{file}:{line}" if line else str(file)
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}",
                         file=str(file), line=line, field=field)
        self.file, self.line, self.field = file, line, field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LevelRule(_Strict):
    """How every action of one level is handled unless the action says otherwise."""

    description: str = ""
    requires_approval: bool
    approver_roles: tuple[Role, ...] = ()
    reason_required: bool = False


class Limits(_Strict):
    """Amount limits of a financial action, in minor units (cents)."""

    dual_approval_above: int | None = Field(None, ge=0, description="two approvers above this")
    max_amount: int | None = Field(None, ge=0, description="refused above this")


class ActionRule(_Strict):
    """The policy of one action type; unset fields come from its level."""

    level: Level
    description: str = ""
    approver_roles: tuple[Role, ...] | None = None
    reason_required: bool | None = None
    limits: Limits | None = None


class ActionPolicy(_Strict):
    """The resolved policy of one action type."""

    action_type: str
    level: Level
    listed: bool = Field(description="false: the type is not in the taxonomy (forbidden)")
    requires_approval: bool
    approver_roles: tuple[Role, ...]
    reason_required: bool
    dual_approval_above: int | None = None
    max_amount: int | None = None


class Taxonomy(_Strict):
    """One version of the autonomy taxonomy."""

    version: str
    description: str = ""
    levels: dict[Level, LevelRule]
    actions: dict[str, ActionRule] = Field(default_factory=dict)

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str) -> str:
        if not SEMVER.match(value):
            raise ValueError("version must be semantic: MAJOR.MINOR.PATCH, e.g. 1.0.0")
        return value

    @field_validator("levels")
    @classmethod
    def _levels(cls, levels: dict[Level, LevelRule]) -> dict[Level, LevelRule]:
        missing = [level for level in LEVELS if level not in levels]
        if missing:
            raise ValueError(f"every level must be described; missing: {', '.join(missing)}")
        for name, rule in levels.items():
            problem = _floor_problem(name, rule.requires_approval, rule.reason_required)
            if problem is not None:
                field = "reason_required" if "reason" in problem else "requires_approval"
                raise ValueError(f"levels.{name}.{field}: {problem}")
        if levels["forbidden"].approver_roles or levels["forbidden"].requires_approval:
            raise ValueError("levels.forbidden: forbidden actions cannot be approved")
        return levels

    @field_validator("actions")
    @classmethod
    def _known_types(cls, actions: dict[str, ActionRule]) -> dict[str, ActionRule]:
        known = {t.value for t in ActionType}
        unknown = sorted(set(actions) - known)
        if unknown:
            raise ValueError(f"not an action type of the spec: {', '.join(unknown)}")
        return actions

    @model_validator(mode="after")
    def _resolvable(self) -> Taxonomy:
        for name, rule in self.actions.items():
            problem = _action_problem(rule, self.policy_for(name))
            if problem is not None:
                field, message = problem
                raise ValueError(f"actions.{name}{field}: {message}")
        return self

    def policy_for(self, action_type: str) -> ActionPolicy:
        """Return the policy of an action type; a type not listed is forbidden."""
        rule = self.actions.get(action_type)
        if rule is None:
            return ActionPolicy(action_type=action_type, level="forbidden", listed=False,
                                requires_approval=False, approver_roles=(),
                                reason_required=False)
        level = self.levels[rule.level]
        limits = rule.limits or Limits()
        return ActionPolicy(
            action_type=action_type, level=rule.level, listed=True,
            requires_approval=level.requires_approval,
            approver_roles=rule.approver_roles if rule.approver_roles is not None
            else level.approver_roles,
            reason_required=level.reason_required if rule.reason_required is None
            else rule.reason_required,
            dual_approval_above=limits.dual_approval_above, max_amount=limits.max_amount,
        )


def _floor_problem(level: str, requires_approval: bool, reason_required: bool) -> str | None:
    """Describe how settings fall below the spec's minimum for a level (None: they don't)."""
    if level in APPROVAL_LEVELS and not requires_approval:
        return f"{level} actions always need a person's approval"
    if level == "financial" and not reason_required:
        return "financial approvals always need a written reason"
    return None


def _action_problem(rule: ActionRule, policy: ActionPolicy) -> tuple[str, str] | None:
    """Return (sub-field, message) of what is wrong with one action's rule, or None."""
    if rule.limits is not None and policy.level != "financial":
        return ".limits", "limits apply to financial actions only"
    floor = _floor_problem(policy.level, policy.requires_approval, policy.reason_required)
    if floor is not None:
        return ".reason_required", floor
    if policy.requires_approval and not policy.approver_roles:
        return ".approver_roles", f"level {policy.level} needs approver_roles"
    if policy.level == "forbidden" and rule.approver_roles:
        return ".approver_roles", "a forbidden action cannot have approvers"
    low, high = policy.dual_approval_above, policy.max_amount
    if low is not None and high is not None and high < low:
        return ".limits", "max_amount is below dual_approval_above"
    return None


def load_file(path: Path) -> Taxonomy:
    """Parse and validate one taxonomy file, or raise `TaxonomyError` naming file/line/field."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaxonomyError(path, None, "", f"cannot read: {exc}") from None
    try:
        node = yaml.compose(text)
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise TaxonomyError(path, line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}") \
            from None
    if not isinstance(raw, dict):
        raise TaxonomyError(path, 1, "", "a taxonomy is a mapping")
    try:
        taxonomy = Taxonomy.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        field = ".".join(str(p) for p in loc)
        message = str(err["msg"]).removeprefix("Value error, ")
        # cross-field checks name the exact field first ("actions.x.limits: ..."): use it
        named, sep, rest = message.partition(": ")
        if sep and named.startswith(("levels.", "actions.")) and " " not in named:
            field, message, loc = named, rest, tuple(named.split("."))
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise TaxonomyError(path, _line_of(node, loc), field, message + more) from None
    if path.name != f"{taxonomy.version}.yaml":
        raise TaxonomyError(path, _line_of(node, ("version",)), "version",
                            f"file must be named {taxonomy.version}.yaml")
    return taxonomy


class TaxonomyStore:
    """Reads taxonomy versions and the active one; sets the active version."""

    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        self.root = root
        self.active_file = root / "active.yaml"

    def versions(self) -> list[str]:
        """List the versions on disk, oldest first."""
        found = [p.stem for p in self.root.glob("*.yaml") if SEMVER.match(p.stem)]
        return sorted(found, key=version_tuple)

    def active_version(self) -> str:
        """Return the version active.yaml names (the newest version when it is absent)."""
        if not self.active_file.is_file():
            versions = self.versions()
            if not versions:
                raise NotFoundError(f"no taxonomy version under {self.root}")
            return versions[-1]
        raw = yaml.safe_load(self.active_file.read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict) or not isinstance(raw.get("active"), str):
            raise TaxonomyError(self.active_file, 1, "active", "must name a version: active: X.Y.Z")
        return str(raw["active"])

    def get(self, version: str | None = None) -> Taxonomy:
        """Return one version (the active one when `version` is None)."""
        version = version or self.active_version()
        path = self.root / f"{version}.yaml"
        if not path.is_file():
            raise NotFoundError(f"no taxonomy version {version} under {self.root}")
        return load_file(path)

    def set_active(self, version: str) -> None:
        """Make `version` the active taxonomy (it must load cleanly)."""
        self.get(version)
        body = "# The taxonomy version in use. Change it with TaxonomyStore.set_active.\n"
        self.active_file.write_text(body + f"active: {version}\n", encoding="utf-8")


def load_active(root: Path = DEFAULT_ROOT) -> Taxonomy:
    """Load the active taxonomy version."""
    return TaxonomyStore(root).get()
