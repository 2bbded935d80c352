"""Approvals over the API end to end: an investigation pauses, a reviewer decides, it resumes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from core.settings import Settings
from sandbox.cases import load_case
from service.investigations import Status
from service.jobs import InvestigationJobs
from service.queue.base import Job
from service.worlds import SandboxWorlds
from tests.service.api_support import ADA, AVA, BILL, READER, api_client, api_settings, auth
from tests.service.conftest import CASES


async def test_reviewer_approves_and_the_investigation_resumes(
        make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    settings = api_settings(make_settings, tmp_path)
    ticket = load_case(CASES / "pub-06-card-declined").case.ticket
    async with api_client(settings) as (ctx, client):
        worlds = SandboxWorlds(settings, CASES, ctx.metrics)
        jobs = InvestigationJobs(ctx.store, worlds, worker="t")
        try:
            # stored without a job, so the queue holds only what the decision enqueues
            row, _ = ctx.store.accept("zendesk", "evt-1", ticket)
            await asyncio.wait_for(jobs.handle(Job("investigate", row.id)), 60)
            assert ctx.store.get(row.id).status == Status.WAITING_APPROVAL.value
            assert await ctx.queue.depth() == 0

            listed = (await client.get("/v1/approvals", headers=auth(READER))).json()["items"]
            assert len(listed) == 1
            pending = listed[0]
            assert pending["investigation_id"] == row.id
            assert pending["action_type"] == "send_customer_reply"
            assert pending["level"] == "customer_visible"
            assert (pending["approvals_required"], pending["approvals_received"]) == (1, 0)
            assert pending["decisions"] == [] and pending["expires_at"]
            url = f"/v1/approvals/{pending['id']}"
            assert (await client.get(url, headers=auth(READER))).json()["id"] == pending["id"]

            decide = f"{url}/decision"
            refused = await client.post(decide, headers=auth(READER), json={"decision": "approve"})
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
            # bill is a billing admin: governance lets only support roles approve replies
            wrong_role = await client.post(decide, headers=auth(BILL),
                                           json={"decision": "approve"})
            assert wrong_role.status_code == 403
            assert wrong_role.json()["error"]["code"] == "approval_role_denied"
            no_reason = await client.post(decide, headers=auth(AVA), json={"decision": "reject"})
            assert no_reason.status_code == 400
            assert no_reason.json()["error"]["code"] == "approval_reason_required"
            assert await ctx.queue.depth() == 0

            approved = await client.post(decide, headers=auth(AVA), json={
                "decision": "approve", "reason": "checked the invoice",
                "edited_text": "Hi Marcus, please pay the open invoice. Thanks!"})
            assert approved.status_code == 200, approved.text
            body = approved.json()
            assert body["status"] == "approved" and body["approvals_received"] == 1
            assert [(d["reviewer"], d["role"], d["decision"]) for d in body["decisions"]] == [
                ("ava", "support_agent", "approve")]
            assert body["edited_text"].startswith("Hi Marcus")
            assert await ctx.queue.depth() == 1  # the resume job

            again = await client.post(decide, headers=auth(ADA), json={"decision": "approve"})
            assert again.status_code == 409
            assert again.json()["error"]["code"] == "approval_not_pending"
            still_pending = (await client.get("/v1/approvals", headers=auth(READER))).json()
            assert still_pending["items"] == []

            kinds: list[str] = []
            stop = asyncio.Event()

            async def handler(job: Job) -> None:
                kinds.append(job.kind)
                await jobs.handle(job)
                stop.set()

            await asyncio.wait_for(ctx.queue.run(handler, concurrency=1, stop=stop), 60)
        finally:
            await worlds.aclose()
        assert kinds == ["resume"]
        done = (await client.get(f"/v1/investigations/{row.id}", headers=auth(READER))).json()
        assert done["status"] == "completed", done.get("error")
        assert done["record"]["paused"] is False
        approved_list = (await client.get("/v1/approvals?status=approved",
                                          headers=auth(READER))).json()["items"]
        assert [a["id"] for a in approved_list] == [pending["id"]]


@pytest.mark.parametrize("body", [{"decision": "maybe"}, {}, {"decision": "approve", "x": 1},
                                  {"decision": "approve", "reason": "r" * 2001}])
async def test_malformed_decision_is_422(make_settings: Callable[..., Settings], tmp_path: Path,
                                         body: dict[str, object]) -> None:
    async with api_client(api_settings(make_settings, tmp_path)) as (_, client):
        response = await client.post("/v1/approvals/1/decision", headers=auth(AVA), json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


async def test_unknown_status_filter_is_422(make_settings: Callable[..., Settings],
                                            tmp_path: Path) -> None:
    async with api_client(api_settings(make_settings, tmp_path)) as (_, client):
        response = await client.get("/v1/approvals?status=lost", headers=auth(READER))
        assert response.status_code == 422
        missing = await client.get("/v1/approvals/12345", headers=auth(READER))
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "approval_not_found"
