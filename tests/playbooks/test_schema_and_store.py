"""The committed playbooks, broken playbook files, and versions in PlaybookStore."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from core.domain import RootCause
from core.errors import InvalidRequestError, NotFoundError
from playbooks import store as store_module
from playbooks.schema import INLINE, Playbook, version_tuple
from playbooks.store import DEFAULT_ROOT, PlaybookError, PlaybookStore, load_file

IDS = sorted(p.name for p in (DEFAULT_ROOT / "library").iterdir() if p.is_dir())

# Parsing YAML is slow in pure Python; the copies in tmp_path share their valid, unchanged
# files. The result of load_file depends only on the file's text, folder and name, so
# valid results are memoised on those (errors are never memoised).
_PARSED: dict[tuple[str, str, str], Playbook] = {}
_real_load_file = store_module.load_file


def _memo_load_file(path: Path) -> Playbook:
    try:
        key = (path.parent.name, path.name, path.read_text(encoding="utf-8"))
    except OSError:
        return _real_load_file(path)
    if key not in _PARSED:
        _PARSED[key] = _real_load_file(path)
    return _PARSED[key]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the committed library and active.yaml."""
    monkeypatch.setattr(store_module, "load_file", _memo_load_file)
    shutil.copytree(DEFAULT_ROOT / "library", tmp_path / "library")
    shutil.copy(DEFAULT_ROOT / "active.yaml", tmp_path / "active.yaml")
    return tmp_path


def line_of(path: Path, needle: str) -> int:
    """Return the 1-based line of the only line containing `needle`."""
    lines = [i for i, text in enumerate(path.read_text().splitlines(), 1) if needle in text]
    assert len(lines) == 1, (needle, lines)
    return lines[0]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


# --- the committed playbooks -----------------------------------------------------------------

@pytest.fixture(scope="module")
def committed() -> PlaybookStore:
    """The real store (one per module, so its parse cache is shared)."""
    return PlaybookStore()


def test_every_committed_playbook_loads(committed: PlaybookStore) -> None:
    loaded = committed.load()
    assert loaded.errors == []
    assert sorted(loaded.versions) == IDS
    assert len(IDS) == 10
    for pid, versions in loaded.versions.items():
        for version, playbook in versions.items():
            assert (playbook.id, playbook.version) == (pid, version)
            assert load_file(DEFAULT_ROOT / "library" / pid / f"{version}.yaml") == playbook


def test_every_root_cause_has_a_hypothesis(committed: PlaybookStore) -> None:
    covered = {h.root_cause for p in committed.active() for h in p.hypotheses}
    assert covered == set(RootCause)


def test_every_active_entry_exists_and_every_playbook_is_active(
        committed: PlaybookStore) -> None:
    store = committed
    active = store.active_versions()
    assert sorted(active) == IDS
    for pid, version in active.items():
        assert store.path(pid, version).is_file(), f"{pid}@{version}"
        assert store.get(pid).version == version
    assert [p.key for p in store.active()] == [f"{pid}@{active[pid]}" for pid in IDS]


def test_committed_templates_use_known_roots(committed: PlaybookStore) -> None:
    for playbook in committed.active():
        for text in playbook.replies.values():
            for path in INLINE.findall(text):
                assert path.split(".")[0] in ("ticket", "customer", "signals"), (playbook.id, path)
        for hyp in playbook.hypotheses:
            for action in hyp.actions:
                for value in action.params.values():
                    for path in INLINE.findall(str(value)):
                        root, name = path.split(".")[:2]
                        assert root in ("ticket", "customer", "signals"), (playbook.id, path)
                        if root == "signals":
                            assert name in {s.id for s in playbook.signals}, (playbook.id, path)


# --- broken files ----------------------------------------------------------------------------

def only_error(store: PlaybookStore, broken: str) -> PlaybookError:
    """Load, check the other nine playbooks survived, and return the single error."""
    loaded = store.load()
    assert len(loaded.errors) == 1, [str(e) for e in loaded.errors]
    assert sorted(loaded.versions) == [pid for pid in IDS if pid != broken]
    assert len(store.active()) == 9
    error = loaded.errors[0]
    assert isinstance(error, InvalidRequestError)
    assert error.code == "playbook_invalid"
    return error


def test_invalid_yaml_names_file_and_line(root: Path) -> None:
    path = root / "library" / "known-bug" / "1.0.0.yaml"
    edit(path, "title: A known, open bug explains the errors", "title: A known: open: bug")
    error = only_error(PlaybookStore(root), "known-bug")
    assert error.file == path
    assert error.line == 4
    assert str(error).startswith(f"{path}:4: ")
    assert "not valid YAML" in str(error)


def test_unclosed_bracket_is_invalid_yaml(root: Path) -> None:
    path = root / "library" / "known-bug" / "1.0.0.yaml"
    edit(path, "  categories: [", "  categories: [[")
    error = only_error(PlaybookStore(root), "known-bug")
    assert error.file == path and error.line is not None
    assert f"{path}:{error.line}:" in str(error)


def test_missing_required_field(root: Path) -> None:
    path = root / "library" / "billing-duplicate-charge" / "1.0.0.yaml"
    edit(path, "owner: support-billing@gatewayco.com\n", "")
    error = only_error(PlaybookStore(root), "billing-duplicate-charge")
    assert error.field == "owner"
    assert str(path) in str(error)
    assert ": owner: " in str(error)
    assert "required" in str(error).lower()


def test_wrong_type_deep_inside_names_line_and_dotted_path(root: Path) -> None:
    path = root / "library" / "auth-invalid-key" / "1.0.0.yaml"
    edit(path, "  - id: key_first_seen\n    kind: exists\n",
         "  - id: key_first_seen\n    kind: exists\n    min_count: \"many\"\n")
    line = line_of(path, 'min_count: "many"')
    error = only_error(PlaybookStore(root), "auth-invalid-key")
    assert error.field == "signals.2.min_count"
    assert error.line == line
    assert f"{path}:{line}: signals.2.min_count: " in str(error)


def test_wrong_type_inside_a_query_window(root: Path) -> None:
    path = root / "library" / "regression-deploy" / "1.0.0.yaml"
    text = path.read_text().splitlines(keepends=True)
    start = line_of(path, "  - id: deploys")
    text.insert(start, "    window:\n      before_hours: soon\n")
    path.write_text("".join(text))
    error = only_error(PlaybookStore(root), "regression-deploy")
    assert error.field == "queries.1.window.before_hours"
    assert error.line == line_of(path, "before_hours: soon")


def test_unknown_signal_in_a_hypothesis(root: Path) -> None:
    path = root / "library" / "billing-duplicate-charge" / "1.0.0.yaml"
    edit(path, "require: [duplicate_charges]", "require: [duplicate_charges, ghost_signal]")
    error = only_error(PlaybookStore(root), "billing-duplicate-charge")
    assert "hypothesis duplicate_charge: unknown signal 'ghost_signal'" in str(error)
    assert str(path) in str(error)


def test_unknown_query_in_a_signal(root: Path) -> None:
    path = root / "library" / "billing-duplicate-charge" / "1.0.0.yaml"
    edit(path, "      query: charges\n", "      query: refunds\n")
    error = only_error(PlaybookStore(root), "billing-duplicate-charge")
    assert "signal duplicate_charges: unknown query 'refunds'" in str(error)


def test_unknown_reply_template(root: Path) -> None:
    path = root / "library" / "billing-duplicate-charge" / "1.0.0.yaml"
    edit(path, "    reply: duplicate\n", "    reply: nonexistent\n")
    error = only_error(PlaybookStore(root), "billing-duplicate-charge")
    assert "unknown reply template 'nonexistent'" in str(error)


def test_template_with_unknown_root(root: Path) -> None:
    path = root / "library" / "billing-duplicate-charge" / "1.0.0.yaml"
    edit(path, 'params: {customer_id: "{{ customer.id }}", limit: 50}',
         'params: {customer_id: "{{ foo.bar }}", limit: 50}')
    error = only_error(PlaybookStore(root), "billing-duplicate-charge")
    assert error.field == "queries.0.params"
    assert error.line == line_of(path, "{{ foo.bar }}")
    assert "'foo.bar' must start with one of" in str(error)


def test_results_template_of_unknown_query(root: Path) -> None:
    path = root / "library" / "billing-duplicate-charge" / "1.0.0.yaml"
    edit(path, 'params: {customer_id: "{{ customer.id }}"}',
         'params: {customer_id: "{{ results.nowhere.0.data.id }}"}')
    error = only_error(PlaybookStore(root), "billing-duplicate-charge")
    assert "query invoices: uses results of unknown query 'nowhere'" in str(error)


def test_non_semver_version(root: Path) -> None:
    path = root / "library" / "known-bug" / "1.0.0.yaml"
    edit(path, "version: 1.0.0\n", "version: v1.0\n")
    error = only_error(PlaybookStore(root), "known-bug")
    assert error.field == "version"
    assert error.line == 2
    assert "semantic" in str(error)


@pytest.mark.parametrize("version", ["1.0", "01.0.0", "1.0.0-beta", "1.0.0.0", ""])
def test_semver_is_required(version: str) -> None:
    raw = yaml.safe_load((DEFAULT_ROOT / "library" / "known-bug" / "1.0.0.yaml").read_text())
    raw["version"] = version
    with pytest.raises(ValueError, match="semantic"):
        Playbook.model_validate(raw)


def test_version_not_matching_file_name(root: Path) -> None:
    path = root / "library" / "known-bug" / "1.0.0.yaml"
    edit(path, "version: 1.0.0\n", "version: 1.0.1\n")
    error = only_error(PlaybookStore(root), "known-bug")
    assert error.field == "version" and error.line == 2
    assert "file must be library/known-bug/1.0.1.yaml" in str(error)


def test_id_not_matching_folder(root: Path) -> None:
    path = root / "library" / "known-bug" / "1.0.0.yaml"
    edit(path, "id: known-bug\n", "id: known-bugs\n")
    error = only_error(PlaybookStore(root), "known-bug")
    assert "file must be library/known-bugs/1.0.0.yaml" in str(error)


def test_duplicate_query_ids(root: Path) -> None:
    path = root / "library" / "billing-duplicate-charge" / "1.0.0.yaml"
    edit(path, "  - id: invoices\n", "  - id: charges\n")
    error = only_error(PlaybookStore(root), "billing-duplicate-charge")
    assert "query ids repeated: charges" in str(error)


def test_unknown_field_is_rejected(root: Path) -> None:
    path = root / "library" / "billing-duplicate-charge" / "1.0.0.yaml"
    edit(path, "    min_count: 2\n", "    min_count: 2\n    minimum: 3\n")
    error = only_error(PlaybookStore(root), "billing-duplicate-charge")
    assert error.field == "signals.0.minimum"
    assert error.line == line_of(path, "minimum: 3")


@pytest.mark.parametrize("text", ["", "- a list\n- of things\n", "just text\n"])
def test_a_playbook_is_a_mapping(root: Path, text: str) -> None:
    path = root / "library" / "known-bug" / "1.0.0.yaml"
    path.write_text(text)
    error = only_error(PlaybookStore(root), "known-bug")
    assert "mapping" in str(error)


def test_a_broken_extra_version_leaves_the_good_one_active(root: Path) -> None:
    good = root / "library" / "known-bug" / "1.0.0.yaml"
    bad = good.with_name("1.1.0.yaml")
    bad.write_text(good.read_text().replace("version: 1.0.0", "version: 1.1.0")
                   .replace("owner: support-platform@gatewayco.com", "owner: x"))
    store = PlaybookStore(root)
    loaded = store.load()
    assert [e.file for e in loaded.errors] == [bad]
    assert loaded.errors[0].field == "owner"
    assert list(loaded.versions["known-bug"]) == ["1.0.0"]
    assert len(store.active()) == 10


# --- versions --------------------------------------------------------------------------------

def add_version(root: Path, pid: str, version: str,
                change: Callable[[str], str] = lambda t: t) -> Path:
    source = root / "library" / pid / "1.0.0.yaml"
    target = source.with_name(f"{version}.yaml")
    target.write_text(change(source.read_text().replace("version: 1.0.0", f"version: {version}")))
    return target


NEW_TITLE = "title: Charged twice for the same invoice"


def retitle(text: str) -> str:
    return text.replace("title: Charged twice for one invoice", NEW_TITLE)


def test_versions_active_pins_and_get(root: Path) -> None:
    add_version(root, "billing-duplicate-charge", "1.1.0", retitle)
    store = PlaybookStore(root)
    assert sorted(store.load().versions["billing-duplicate-charge"]) == ["1.0.0", "1.1.0"]

    def active_version(pins: dict[str, str] | None = None) -> str:
        return next(p.version for p in store.active(pins) if p.id == "billing-duplicate-charge")

    assert active_version() == "1.0.0"  # active.yaml still pins 1.0.0
    assert active_version({"billing-duplicate-charge": "1.1.0"}) == "1.1.0"
    assert store.get("billing-duplicate-charge").version == "1.0.0"
    newer = store.get("billing-duplicate-charge", "1.1.0")
    assert newer.title == NEW_TITLE.removeprefix("title: ")
    with pytest.raises(NotFoundError):
        store.get("billing-duplicate-charge", "9.9.9")
    with pytest.raises(NotFoundError):
        store.get("no-such-playbook")


def test_unpinned_playbook_uses_its_newest_version(root: Path) -> None:
    add_version(root, "known-bug", "1.2.0")
    add_version(root, "known-bug", "1.10.0")
    active = yaml.safe_load((root / "active.yaml").read_text())
    del active["known-bug"]
    (root / "active.yaml").write_text(yaml.safe_dump(active))
    store = PlaybookStore(root)
    assert store.get("known-bug").version == "1.10.0"  # semantic, not text order
    assert next(p for p in store.active() if p.id == "known-bug").version == "1.10.0"


def test_set_active_writes_active_yaml_and_rollback(root: Path) -> None:
    add_version(root, "billing-duplicate-charge", "1.1.0", retitle)
    store = PlaybookStore(root)
    store.set_active("billing-duplicate-charge", "1.1.0")
    written = yaml.safe_load((root / "active.yaml").read_text())
    assert written["billing-duplicate-charge"] == "1.1.0"
    assert {k: v for k, v in written.items() if k != "billing-duplicate-charge"} == \
        {pid: "1.0.0" for pid in IDS if pid != "billing-duplicate-charge"}
    assert PlaybookStore(root).get("billing-duplicate-charge").version == "1.1.0"
    assert store.get("billing-duplicate-charge").title == NEW_TITLE.removeprefix("title: ")

    assert store.rollback("billing-duplicate-charge") == ("1.1.0", "1.0.0")
    assert yaml.safe_load((root / "active.yaml").read_text())["billing-duplicate-charge"] == \
        "1.0.0"
    assert store.get("billing-duplicate-charge").version == "1.0.0"
    with pytest.raises(NotFoundError, match="no earlier version"):
        store.rollback("billing-duplicate-charge")
    assert store.get("billing-duplicate-charge").version == "1.0.0"


def test_rollback_skips_broken_versions(root: Path) -> None:
    add_version(root, "known-bug", "1.1.0", lambda t: t.replace("kind: after", "kind: before"))
    add_version(root, "known-bug", "1.2.0")
    store = PlaybookStore(root)
    assert [e.file.name for e in store.load().errors] == ["1.1.0.yaml"]
    store.set_active("known-bug", "1.2.0")
    assert store.rollback("known-bug") == ("1.2.0", "1.0.0")


def test_set_active_refuses_a_broken_version(root: Path) -> None:
    add_version(root, "known-bug", "1.1.0", lambda t: t.replace("severity: medium",
                                                                "severity: catastrophic"))
    store = PlaybookStore(root)
    before = (root / "active.yaml").read_text()
    with pytest.raises(PlaybookError) as caught:
        store.set_active("known-bug", "1.1.0")
    assert caught.value.field == "hypotheses.0.severity"
    assert (root / "active.yaml").read_text() == before
    with pytest.raises(PlaybookError):
        store.set_active("known-bug", "2.0.0")  # no such file
    assert (root / "active.yaml").read_text() == before


def test_diff_shows_the_change(root: Path) -> None:
    add_version(root, "billing-duplicate-charge", "1.1.0", retitle)
    store = PlaybookStore(root)
    diff = store.diff("billing-duplicate-charge", "1.0.0", "billing-duplicate-charge", "1.1.0")
    assert diff.splitlines()[:2] == ["--- billing-duplicate-charge@1.0.0",
                                     "+++ billing-duplicate-charge@1.1.0"]
    changed = [line for line in diff.splitlines()
               if line[:1] in "+-" and not line.startswith(("---", "+++"))]
    assert changed == ["-version: 1.0.0", "+version: 1.1.0",
                       "-title: Charged twice for one invoice", f"+{NEW_TITLE}"]
    assert " owner: support-billing@gatewayco.com" in diff.splitlines()  # context
    assert store.diff("known-bug", "1.0.0", "known-bug", "1.0.0") == ""
    with pytest.raises(NotFoundError):
        store.diff("known-bug", "1.0.0", "known-bug", "3.0.0")


def test_reload_sees_an_edited_file(root: Path) -> None:
    store = PlaybookStore(root)
    assert store.get("known-bug").owner == "support-platform@gatewayco.com"
    path = root / "library" / "known-bug" / "1.0.0.yaml"
    edit(path, "owner: support-platform@gatewayco.com", "owner: bugs-team@gatewayco.com")
    assert store.get("known-bug").owner == "bugs-team@gatewayco.com"


def test_active_yaml_must_be_a_mapping(root: Path) -> None:
    (root / "active.yaml").write_text("- known-bug\n")
    with pytest.raises(PlaybookError, match="must map playbook ids"):
        PlaybookStore(root).active()


def test_without_active_yaml_the_newest_versions_are_used(root: Path) -> None:
    (root / "active.yaml").unlink()
    add_version(root, "known-bug", "2.0.0")
    store = PlaybookStore(root)
    assert store.active_versions() == {}
    versions = {p.id: p.version for p in store.active()}
    assert versions == {**{pid: "1.0.0" for pid in IDS}, "known-bug": "2.0.0"}


def test_version_tuple_sorts_semantically() -> None:
    assert sorted(["1.10.0", "1.2.0", "0.9.9", "10.0.0"], key=version_tuple) == \
        ["0.9.9", "1.2.0", "1.10.0", "10.0.0"]
