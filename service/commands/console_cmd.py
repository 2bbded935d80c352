"""`sleuth console`: the reviewer console (Streamlit) on 127.0.0.1.

It reads the same settings as every other command (`SLEUTH_…`, `.env`), so it shows the
database the demo and the service write to. Put a TLS-terminating proxy in front of it to
reach it from another machine; it listens on loopback only.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

import ui

APP = Path(ui.__file__).resolve().parent / "app.py"


def streamlit_command(port: int) -> list[str]:
    """Return the command line that serves the console on 127.0.0.1:`port`."""
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.headless", "true",
            "--server.address", "127.0.0.1",
            "--server.port", str(port),
            "--browser.gatherUsageStats", "false",
            "--client.toolbarMode", "minimal",
            "--server.fileWatcherType", "none"]


def console(
    port: Annotated[int, typer.Option(min=1, max=65535, help="port on 127.0.0.1")] = 8501,
) -> None:
    """Open the reviewer console at http://127.0.0.1:PORT (Ctrl-C stops it)."""
    typer.echo(f"reviewer console: http://127.0.0.1:{port}  (Ctrl-C to stop)")
    try:
        code = subprocess.call(streamlit_command(port))  # noqa: S603 - our own fixed argv
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)
