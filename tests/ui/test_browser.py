"""End to end in a real browser: Debian's Chromium driven by Playwright.

The console runs as `sleuth console` does (a `streamlit run` subprocess on a free loopback
port) over a copy of the seeded database, with an embedded worker running in a thread, so
a decision taken in the browser resumes the investigation for real. Screenshots of every
view are kept in $SLEUTH_ARTIFACTS_DIR or tests/artifacts/console/.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from agent.runner import replay_line
from core.settings import Settings, load_settings
from playbooks.store import DEFAULT_ROOT
from sandbox.models import closed_port as free_port
from service.commands.console_cmd import streamlit_command
from service.context import build_context
from service.workers import run_worker
from service.worlds import SandboxWorlds
from tests.conftest import IN_CI
from tests.ui.conftest import ROOT, Seeded
from tests.ui.test_console_pages import REFUND, REPLY_06
from ui.fixtures import CASES

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 30_000


def require_chromium() -> None:
    """Skip without Debian's chromium on a developer machine; fail under CI=true."""
    if CHROMIUM.is_file():
        return
    message = (f"Debian's chromium is not installed at {CHROMIUM} "
               "(apt-get install -y chromium chromium-driver)")
    if IN_CI:
        pytest.fail(f"{message}, and CI=true requires it", pytrace=False)
    pytest.skip(message)


def artifacts_dir() -> Path:
    """Return (and create) the folder screenshots are kept in."""
    folder = Path(os.environ.get("SLEUTH_ARTIFACTS_DIR") or ROOT / "tests" / "artifacts"
                  / "console")
    folder.mkdir(parents=True, exist_ok=True)
    return folder



class WorkerThread:
    """An embedded worker (`service.workers.run_worker`) on its own loop in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        ctx = build_context(self.settings)
        worlds = SandboxWorlds(self.settings, CASES, ctx.metrics)
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        try:
            await run_worker(ctx, self._stop, worlds=worlds, concurrency=2, name="browser-test")
        finally:
            await worlds.aclose()
            await ctx.aclose()

    def __enter__(self) -> WorkerThread:
        self._thread.start()
        assert self._ready.wait(30), "the worker did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@dataclass
class Console:
    """The running console: its URL and the seeded data behind it."""

    url: str
    seeded: Seeded


@pytest.fixture
def console(seeded: Seeded, tmp_path: Path) -> Iterator[Console]:
    """Start a worker and `streamlit run ui/app.py` over the seeded copy."""
    require_chromium()
    playbooks = tmp_path / "playbooks"
    shutil.copytree(DEFAULT_ROOT, playbooks, ignore=shutil.ignore_patterns("*.py", "__py*"))
    one = playbooks / "library" / "billing-duplicate-charge"
    (one / "1.1.0.yaml").write_text(
        (one / "1.0.0.yaml").read_text().replace("version: 1.0.0", "version: 1.1.0")
        .replace("title: Charged twice for one invoice",
                 "title: Charged twice for one invoice (refund the newer charge)"))
    data_dir = seeded.settings.data_dir
    # replay-results lines (format v1) of the seeded investigations, for the scores panel
    (data_dir / "evals").mkdir()
    with (data_dir / "evals" / "latest.jsonl").open("w") as out:
        for case, inv in seeded.investigations.items():
            record = seeded.ctx.store.get(inv).record_dict()
            out.write(json.dumps(replay_line(case, record, wall_ms=1000.0)) + "\n")
    settings = load_settings(env_file=None, data_dir=data_dir,
                             agent={"playbooks_dir": str(playbooks)})
    port = free_port()
    env = {**os.environ, "SLEUTH_DATA_DIR": str(data_dir),
           "SLEUTH_AGENT__PLAYBOOKS_DIR": str(playbooks),
           "SLEUTH_TELEMETRY__LOG_LEVEL": "WARNING"}
    log = (tmp_path / "streamlit.log").open("w")
    with WorkerThread(settings):
        server = subprocess.Popen(streamlit_command(port), env=env, cwd=ROOT,  # noqa: S603
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/_stcore/health", timeout=1).text == "ok":
                        break
                assert server.poll() is None, (tmp_path / "streamlit.log").read_text()
                assert time.monotonic() < deadline, "the console did not start in 60 s"
                time.sleep(0.3)
            yield Console(url, seeded)
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
            log.close()


def _settle(page: Page) -> None:
    """Wait until Streamlit has finished the run and drawn every element."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=stSkeleton]')"
        " && !document.querySelector('[data-testid=stStatusWidget]')", timeout=TIMEOUT_MS)
    time.sleep(0.5)  # charts and tables paint after the run settles


def _shot(page: Page, name: str, shots: list[Path]) -> None:
    _settle(page)
    # Streamlit scrolls its main block, not the document: back to the top for the shot
    page.evaluate("document.querySelectorAll('[data-testid=stMain], "
                  "[data-testid=stAppViewContainer]').forEach(e => e.scrollTo(0, 0))")
    path = artifacts_dir() / name
    page.screenshot(path=str(path), full_page=True)
    shots.append(path)
    print(f"screenshot: {path}")


def _sign_in(page: Page, name: str) -> None:
    page.get_by_role("textbox", name="Reviewer name").fill(name)
    page.get_by_role("textbox", name="Password").fill(f"demo-{name}")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Approval queue").wait_for()


def _wait_status(console: Console, investigation_id: str, status: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while console.seeded.ctx.store.get(investigation_id).status != status:
        assert time.monotonic() < deadline, (
            f"{investigation_id} is {console.seeded.ctx.store.get(investigation_id).status}, "
            f"not {status}, after {seconds:.0f} s")
        time.sleep(0.5)


def test_sign_in_decide_and_watch_the_investigation_resume(console: Console) -> None:
    reply = console.seeded.approval(*REPLY_06)
    refund = console.seeded.approval(*REFUND)
    shots: list[Path] = []
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(console.url)
        page.get_by_role("button", name="Sign in").wait_for()
        expect(page.get_by_text("Approval queue")).to_have_count(0)  # no session, no data
        _shot(page, "01-sign-in.png", shots)

        _sign_in(page, "ava")  # support_agent: approves the reply
        card = page.locator(f".st-key-card-{reply.id}")
        expect(card).to_contain_text("send_customer_reply")
        expect(page.locator(f".st-key-card-{refund.id}")).to_have_count(0)  # not her role
        _shot(page, "02-queue-as-support-agent.png", shots)
        # Enter in the reason field does not submit the form (it would press Approve)
        card.get_by_role("textbox", name=re.compile("Reason")).fill("the customer asked twice")
        card.get_by_role("textbox", name=re.compile("Reason")).press("Enter")
        time.sleep(1.5)
        assert console.seeded.ctx.approvals.get(reply.id or 0).status == "pending"
        card.get_by_role("button", name="Approve").click()
        expect(page.get_by_text("Approved: send_customer_reply")).to_be_visible()
        _shot(page, "03-reply-approved.png", shots)

        page.get_by_role("button", name="Sign out").click()
        page.get_by_role("button", name="Sign in").wait_for()
        _sign_in(page, "bill")  # billing_admin: rejects the refund
        card = page.locator(f".st-key-card-{refund.id}")
        expect(card).to_contain_text("499.00 USD")
        expect(card).to_contain_text("Needs 2 different approvers")
        card.get_by_role("textbox", name=re.compile("Reason")).fill("refunded by hand already")
        _shot(page, "04-refund-card.png", shots)
        card.get_by_role("button", name="Reject").click()
        expect(page.get_by_text("Rejected: issue_refund")).to_be_visible()
        _shot(page, "05-refund-rejected.png", shots)

        # the worker takes the resume job and finishes the investigation
        _wait_status(console, reply.investigation_id, "completed", 90)
        page.get_by_text("Investigation", exact=True).first.click()
        page.get_by_role("heading", name="Investigation").wait_for()
        page.get_by_role("combobox").first.click()
        page.get_by_role("option", name=re.compile(reply.investigation_id)).click()
        expect(page.get_by_text("Latest step: completed")).to_be_visible()
        _shot(page, "06-investigation-resumed.png", shots)

        page.get_by_text("Operations", exact=True).first.click()
        page.get_by_role("heading", name="Tokens and cost").wait_for()
        _shot(page, "07-operations.png", shots)

        page.get_by_text("Playbooks", exact=True).first.click()
        page.get_by_role("heading", name="Compare two versions").wait_for()
        page.get_by_role("combobox").first.click()
        page.get_by_role("option", name="billing-duplicate-charge").click()
        expect(page.get_by_text("+version: 1.1.0")).to_be_visible()
        page.get_by_role("heading", name="Latest replay scores").wait_for()
        expect(page.get_by_text("root cause accuracy")).to_be_visible()
        _shot(page, "08-playbooks.png", shots)
        browser.close()
    assert all(p.stat().st_size > 10_000 for p in shots)
    events = [e.data for e in console.seeded.ctx.store.events(reply.investigation_id)]
    assert any("resume on browser-test" in e for e in events)  # resumed by our worker
    refund_now = console.seeded.ctx.approvals.get(refund.id or 0)
    assert refund_now.status == "rejected"
