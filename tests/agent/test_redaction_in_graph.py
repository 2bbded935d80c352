"""Nothing sensitive reaches a model, a log line or the audit log."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from agent.factory import build_governance
from core.settings import Settings
from sandbox.cases import load_case
from sandbox.models import ModelSandbox, Status
from sandbox.world import SandboxWorld
from tests.agent.conftest import case_path, investigating
from tests.agent.test_model_tiers import model_settings  # noqa: F401 - fixture

PASTED_KEY = "pk-live-Vzn8ZKZNsSZq1J1YIsK7wU7c5qnPEqkD"
EMAIL = "javier.ortega@girasolviajes.es"


async def test_the_model_and_the_audit_log_never_see_pii_or_secrets(
    sandbox: ModelSandbox, model_settings: Settings,  # noqa: F811
    world_of: Callable[[str], SandboxWorld], tmp_path: Path,
) -> None:
    case = load_case(case_path("pub-09-key-rotated"))
    assert PASTED_KEY in case.case.ticket.body
    sandbox.set_default("anthropic", Status(503))  # the prompt is still sent and recorded
    world = world_of("pub-09-key-rotated")
    async with investigating(world, model_settings) as inv:
        record = await inv.investigate(case.case.ticket)
    assert record["tier"] == "rules"
    prompts = [r["body"]["messages"][0]["content"] for r in sandbox.received("anthropic")]
    assert prompts
    for prompt in prompts:
        assert PASTED_KEY not in prompt
        assert EMAIL not in prompt
        assert "<SECRET_1>" in prompt
        assert "errors:invalid_api_key" in prompt  # evidence refs survive redaction
    governance = build_governance(model_settings)
    assert governance.audit is not None
    out = io.StringIO()
    governance.audit.export(out, investigation_id=record["investigation_id"])
    exported = out.getvalue()
    assert PASTED_KEY not in exported and EMAIL not in exported
    assert "ticket_received" in exported and "model_call" in exported
