"""Fixtures of the console tests: a database of real paused investigations, and the app.

The investigations are made once per session (real jobs against the cases' sandbox
worlds, about 15 s) into a template folder; each test gets its own copy of the folder,
so tests can decide approvals without seeing each other's decisions.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.settings import Settings, load_settings
from governance.approvals_store import ApprovalRequest
from service.context import ServiceContext, build_context
from ui import auth, runtime
from ui.fixtures import seed_investigations

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "ui" / "app.py"


@dataclass
class Seeded:
    """A copy of the seeded database, its settings, a context on it, and the case ids."""

    settings: Settings
    ctx: ServiceContext
    investigations: dict[str, str]  # case folder -> investigation id

    def approval(self, case: str, action_type: str) -> ApprovalRequest:
        """Return the approval request of one case's action."""
        found = [a for a in self.ctx.approvals.list(investigation_id=self.investigations[case])
                 if a.action_type == action_type]
        assert len(found) == 1, found
        return found[0]

    def app(self, reviewer: str | None = None) -> AppTest:
        """Return the console as a fresh session, signed in as `reviewer` (or not at all)."""
        at = AppTest.from_file(str(APP), default_timeout=30)
        if reviewer is not None:
            at.session_state[auth.SESSION_KEY] = reviewer
        return at.run()


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Investigate the demo cases once; return the data folder and {case: investigation}."""
    folder = tmp_path_factory.mktemp("console-seed")
    settings = load_settings(env_file=None, data_dir=folder)
    ids = asyncio.run(seed_investigations(settings))
    return folder, ids


@pytest.fixture
def seeded(seeded_template: tuple[Path, dict[str, str]], tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Seeded]:
    """Copy the seeded data for this test and point the console (SLEUTH_DATA_DIR) at it."""
    template, ids = seeded_template
    data_dir = tmp_path / "data"
    shutil.copytree(template, data_dir)
    monkeypatch.setenv("SLEUTH_DATA_DIR", str(data_dir))
    settings = load_settings(env_file=None, data_dir=data_dir)
    ctx = build_context(settings)
    yield Seeded(settings, ctx, ids)
    asyncio.run(ctx.aclose())
    runtime.close_all()
    auth.reset_failures()
