"""The autonomy taxonomy and policy decisions: only an action's type decides."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.domain import ActionType, ProposedAction
from core.errors import ConfigurationError, NotFoundError
from governance.policy import decide
from governance.taxonomy import DEFAULT_ROOT, Taxonomy, TaxonomyError, TaxonomyStore, load_file

ACTIVE = TaxonomyStore().get()

EXPECTED = {
    "add_internal_note": ("execute", "internal"),
    "tag_ticket": ("execute", "internal"),
    "set_priority": ("execute", "internal"),
    "link_known_issue": ("execute", "internal"),
    "send_customer_reply": ("needs_approval", "customer_visible"),
    "create_bug_report": ("needs_approval", "external_write"),
    "escalate_to_oncall": ("needs_approval", "external_write"),
    "issue_refund": ("needs_approval", "financial"),
    "apply_credit": ("needs_approval", "financial"),
}


def test_every_spec_action_type_is_in_the_active_taxonomy() -> None:
    assert set(EXPECTED) == {t.value for t in ActionType}
    assert set(ACTIVE.actions) == set(EXPECTED)


@pytest.mark.parametrize(("action_type", "expected"), sorted(EXPECTED.items()))
def test_each_spec_action_type_maps_as_the_spec_requires(
        action_type: str, expected: tuple[str, str]) -> None:
    decision = decide({"type": action_type, "reason": "r", "params": {"amount": 500}}, ACTIVE)
    assert (decision.outcome, decision.level) == expected
    assert decision.taxonomy_version == ACTIVE.version
    if decision.outcome == "needs_approval":
        assert decision.approver_roles and decision.approvals_required >= 1
    else:
        assert decision.approver_roles == () and decision.approvals_required == 0
    assert decision.reason_required == (decision.level == "financial")


def test_approver_roles_follow_the_level() -> None:
    def roles(t: str) -> set[str]:
        return set(decide({"type": t, "params": {"amount": 1}}, ACTIVE).approver_roles)

    assert roles("send_customer_reply") == {"support_agent", "support_lead", "admin"}
    assert roles("escalate_to_oncall") == {"support_lead", "oncall_engineer", "admin"}
    assert roles("issue_refund") == {"billing_admin", "admin"}
    assert "support_agent" not in roles("apply_credit")


@pytest.mark.parametrize("action_type",
                         ["delete_workspace", "run_sql", "ISSUE_REFUND", "issue_refund ", ""])
def test_types_outside_the_taxonomy_are_refused(action_type: str) -> None:
    decision = decide({"type": action_type, "params": {}}, ACTIVE)
    assert decision.outcome == "refuse"
    assert decision.level == "forbidden"
    assert decision.approvals_required == 0


def test_an_action_without_a_type_is_refused() -> None:
    assert decide({"params": {"level": "internal"}}, ACTIVE).outcome == "refuse"
    assert decide({"type": 7}, ACTIVE).outcome == "refuse"


def test_a_type_listed_as_forbidden_is_refused(tmp_path: Path) -> None:
    text = (DEFAULT_ROOT / "1.0.0.yaml").read_text().replace(
        "  apply_credit:\n    level: financial\n    limits:\n      dual_approval_above: 10000\n"
        "      max_amount: 500000\n", "  apply_credit:\n    level: forbidden\n")
    (tmp_path / "1.0.0.yaml").write_text(text)
    taxonomy = load_file(tmp_path / "1.0.0.yaml")
    decision = decide({"type": "apply_credit", "params": {"amount": 1}}, taxonomy)
    assert decision.outcome == "refuse"
    assert "forbidden by taxonomy" in decision.why


def test_the_models_own_level_and_approval_count_are_ignored() -> None:
    sneaky = {"type": "issue_refund", "level": "internal", "approvals_required": 0,
              "outcome": "execute", "reason_required": False,
              "params": {"amount": 50_000, "level": "read_only", "approvals_required": 1,
                         "approver_roles": ["support_agent"]}}
    decision = decide(sneaky, ACTIVE)
    assert decision.outcome == "needs_approval"
    assert decision.level == "financial"
    assert decision.approvals_required == 2
    assert decision.reason_required is True
    assert "support_agent" not in decision.approver_roles
    # nor can a model lift an internal action into something else
    assert decide({"type": "tag_ticket", "level": "forbidden"}, ACTIVE).outcome == "execute"


def test_a_proposed_action_model_is_accepted() -> None:
    action = ProposedAction(type="send_customer_reply", reason="answer", params={})
    assert decide(action, ACTIVE).outcome == "needs_approval"


@pytest.mark.parametrize(("params", "required"), [
    ({"amount": 0}, 1),
    ({"amount": 10_000}, 1),
    ({"amount": 10_001}, 2),
    ({"amount": 500_000}, 2),
    ({}, 2),                       # missing: the safe side
    ({"amount": "5000"}, 2),       # not minor units
    ({"amount": 12.5}, 2),
    ({"amount": -5}, 2),
    ({"amount": True}, 2),
])
def test_financial_approvals_required_depend_on_the_amount(
        params: dict[str, object], required: int) -> None:
    for action_type in ("issue_refund", "apply_credit"):
        decision = decide({"type": action_type, "params": params}, ACTIVE)
        assert decision.outcome == "needs_approval"
        assert decision.approvals_required == required, decision.why
        assert decision.reason_required


def test_amounts_above_the_ceiling_are_refused() -> None:
    decision = decide({"type": "issue_refund", "params": {"amount": 500_001}}, ACTIVE)
    assert decision.outcome == "refuse"
    assert decision.level == "financial"
    assert "500000" in decision.why


def test_non_financial_amounts_change_nothing() -> None:
    decision = decide({"type": "send_customer_reply", "params": {"amount": 10**9}}, ACTIVE)
    assert decision.approvals_required == 1
    assert decision.amount is None


# --- taxonomy files ------------------------------------------------------------------

def _broken(tmp_path: Path, old: str, new: str, name: str = "1.0.0.yaml") -> Path:
    text = (DEFAULT_ROOT / "1.0.0.yaml").read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path


def _line(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_an_unknown_role_names_file_line_and_field(tmp_path: Path) -> None:
    path = _broken(tmp_path, "approver_roles: [billing_admin, admin]",
                   "approver_roles: [billing_admin, cfo]")
    with pytest.raises(TaxonomyError) as info:
        load_file(path)
    err = info.value
    assert err.file == path
    assert err.field == "levels.financial.approver_roles.1"
    assert err.line == _line(path, "cfo")
    assert f"{path}:{err.line}" in err.message
    assert isinstance(err, ConfigurationError)


def test_an_unknown_level_names_its_line(tmp_path: Path) -> None:
    path = _broken(tmp_path, "  tag_ticket:\n    level: internal",
                   "  tag_ticket:\n    level: harmless")
    with pytest.raises(TaxonomyError) as info:
        load_file(path)
    assert info.value.field == "actions.tag_ticket.level"
    assert info.value.line == _line(path, "harmless")


def test_a_financial_level_without_approval_is_refused(tmp_path: Path) -> None:
    path = _broken(tmp_path, "    requires_approval: true\n    reason_required: true",
                   "    requires_approval: false\n    reason_required: true")
    with pytest.raises(TaxonomyError, match="always need a person's approval") as info:
        load_file(path)
    assert info.value.field == "levels.financial.requires_approval"
    assert info.value.line == _line(path, "reason_required: true") - 1


def test_a_financial_action_cannot_drop_the_reason(tmp_path: Path) -> None:
    path = _broken(tmp_path, "  issue_refund:\n    level: financial\n",
                   "  issue_refund:\n    level: financial\n    reason_required: false\n")
    with pytest.raises(TaxonomyError, match="written reason") as info:
        load_file(path)
    assert info.value.field == "actions.issue_refund.reason_required"
    assert info.value.line == _line(path, "reason_required: false")


def test_an_action_type_not_in_the_spec_is_an_error(tmp_path: Path) -> None:
    path = _broken(tmp_path, "actions:\n", "actions:\n  wire_money:\n    level: financial\n")
    with pytest.raises(TaxonomyError, match="wire_money"):
        load_file(path)


def test_limits_on_a_non_financial_action_are_an_error(tmp_path: Path) -> None:
    path = _broken(tmp_path, "  send_customer_reply:\n    level: customer_visible\n",
                   "  send_customer_reply:\n    level: customer_visible\n"
                   "    limits: {max_amount: 5}\n")
    with pytest.raises(TaxonomyError) as info:
        load_file(path)
    assert info.value.field == "actions.send_customer_reply.limits"
    assert info.value.line == _line(path, "limits: {max_amount: 5}")


def test_bad_yaml_and_misnamed_files_say_where(tmp_path: Path) -> None:
    path = _broken(tmp_path, "actions:\n", "actions: [\n")
    with pytest.raises(TaxonomyError, match="not valid YAML") as info:
        load_file(path)
    assert info.value.line is not None
    misnamed = _broken(tmp_path, "version: 1.0.0", "version: 1.0.0", name="1.1.0.yaml")
    with pytest.raises(TaxonomyError, match=r"named 1\.0\.0\.yaml") as info:
        load_file(misnamed)
    assert info.value.field == "version"
    assert info.value.line == _line(misnamed, "version: 1.0.0")


def test_store_keeps_versions_and_switches_the_active_one(tmp_path: Path) -> None:
    shutil.copy(DEFAULT_ROOT / "1.0.0.yaml", tmp_path / "1.0.0.yaml")
    _broken(tmp_path, "version: 1.0.0", "version: 1.1.0", name="1.1.0.yaml")
    store = TaxonomyStore(tmp_path)
    assert store.versions() == ["1.0.0", "1.1.0"]
    assert store.active_version() == "1.1.0"  # no active.yaml: the newest
    store.set_active("1.0.0")
    assert store.get().version == "1.0.0"
    with pytest.raises(NotFoundError):
        store.set_active("9.9.9")
    assert store.active_version() == "1.0.0"


def test_the_packaged_active_file_names_a_loadable_version() -> None:
    store = TaxonomyStore()
    assert store.active_version() in store.versions()
    assert isinstance(store.get(), Taxonomy)
