"""Run one investigation with GitHub hanging, printing each finished call (killed by a test)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from agent.factory import investigator
from core.settings import load_settings
from core.telemetry import Metrics, configure_logging
from sandbox.cases import load_case
from sandbox.http import Hang
from sandbox.world import SandboxWorld


async def main(case_dir: str, checkpoints: str, investigation_id: str) -> None:
    configure_logging(level="ERROR")
    case = load_case(Path(case_dir))
    world = SandboxWorld(case).start()
    world.server.set_default_fault("github", Hang(120))

    def emit(event: dict[str, object]) -> None:
        if event.get("step") == "gather" and "key" in event:
            print(json.dumps({"key": event["key"], "source": event["source"]}), flush=True)

    settings = load_settings(None, data_dir=Path(checkpoints).parent)
    async with investigator(settings, world.connector_settings(), metrics=Metrics(),
                            checkpoints=checkpoints) as inv:
        await inv.investigate(case.case.ticket, investigation_id=investigation_id,
                              on_event=emit)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
