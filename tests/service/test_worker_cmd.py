"""`sleuth worker`: refuses the embedded queue unless asked, stops on the first signal."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.commands import worker_cmd

runner = CliRunner()


@pytest.fixture(autouse=True)
def _keep_root_logging() -> Iterator[None]:
    """Restore the root logger: the command points it at the runner's stream, closed after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers = handlers
    root.setLevel(level)


def test_refuses_the_embedded_queue_without_the_flag(tmp_path: Path) -> None:
    result = runner.invoke(app, ["worker", "--env-file", str(tmp_path / "none.env")],
                           env={"SLEUTH_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2
    assert "SLEUTH_QUEUE__BACKEND=procrastinate" in result.output
    assert "--embedded" in result.output
    assert not (tmp_path / "sleuth.db").exists()  # refused before touching the database


def test_invalid_settings_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["worker", "--env-file", str(tmp_path / "none.env")],
                           env={"SLEUTH_QUEUE__BACKEND": "rabbitmq"})
    assert result.exit_code == 2
    assert "invalid settings" in result.output and "queue.backend" in result.output


def test_an_unreachable_queue_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["worker", "--env-file", str(tmp_path / "none.env")],
        env={"SLEUTH_QUEUE__BACKEND": "procrastinate", "SLEUTH_DATA_DIR": str(tmp_path),
             "SLEUTH_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/test"})
    assert result.exit_code == 1
    assert "connection" in result.output.lower() or "unavailable" in result.output.lower()


async def test_first_signal_stops_gracefully_and_the_second_exits_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []
    monkeypatch.setattr(worker_cmd.os, "_exit", exits.append)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    worker_cmd._install_signals(loop, stop)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stop.wait(), 5)
        assert exits == []
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(50):
            if exits:
                break
            await asyncio.sleep(0.02)
        assert exits == [128 + signal.SIGINT]
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
