"""Routes: approval requests, and reviewers' decisions on them.

Reading needs role reader or above. Deciding needs role reviewer or admin, and the token
must name a governance reviewer (`reviewer:` in the tokens file): the decision is taken
as that reviewer, so governance's own rules still apply (which roles may approve which
levels, two different approvers for large refunds, a reason to reject). A decision that
settles a request enqueues the investigation's resume job (`ServiceContext.decide`).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from governance.approvals_store import ApprovalRequest, ApprovalStatus
from governance.reviewers import Reviewer
from service.api.auth import ApiRole, Principal, require
from service.api.deps import get_ctx
from service.api.schemas import ApprovalList, ApprovalOut, DecisionIn, error_responses
from service.context import ServiceContext
from service.errors import ForbiddenError

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])
Ctx = Annotated[ServiceContext, Depends(get_ctx)]
Reader = Annotated[Principal, Depends(require(ApiRole.READER))]
Decider = Annotated[Principal, Depends(require(ApiRole.REVIEWER))]
ApprovalId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the approval request's id")]


def _with_decisions(ctx: ServiceContext, rows: list[ApprovalRequest]) -> list[ApprovalOut]:
    return [ApprovalOut.of(row, ctx.approvals.decisions(row.id or 0)) for row in rows]


@router.get("", response_model=ApprovalList,
            responses=error_responses(401, 403, 422, 429))
async def list_approvals(
    ctx: Ctx, _: Reader,
    status: ApprovalStatus = ApprovalStatus.PENDING,
    investigation_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,40}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ApprovalList:
    """List approval requests in one status (pending by default), oldest first."""

    def load() -> list[ApprovalOut]:
        rows = ctx.approvals.list(status.value, investigation_id)[:limit]
        return _with_decisions(ctx, rows)

    return ApprovalList(items=await asyncio.to_thread(load))


@router.get("/{approval_id}", response_model=ApprovalOut,
            responses=error_responses(401, 403, 404, 422, 429))
async def get_approval(approval_id: ApprovalId, ctx: Ctx, _: Reader) -> ApprovalOut:
    """Return one approval request with its decisions."""

    def load() -> ApprovalOut:
        return _with_decisions(ctx, [ctx.approvals.get(approval_id)])[0]

    return await asyncio.to_thread(load)


def acting_reviewer(ctx: ServiceContext, principal: Principal) -> Reviewer:
    """Return the governance reviewer a token acts as, or raise ForbiddenError."""
    if principal.reviewer is None:
        raise ForbiddenError(f"token {principal.name!r} names no governance reviewer, so it "
                             "cannot decide approvals", token=principal.name)
    reviewer = ctx.reviewers.get(principal.reviewer)
    if reviewer is None:
        raise ForbiddenError(f"token {principal.name!r} acts as reviewer "
                             f"{principal.reviewer!r}, who is not configured",
                             token=principal.name)
    return reviewer


@router.post("/{approval_id}/decision", response_model=ApprovalOut,
             responses=error_responses(400, 401, 403, 404, 409, 422, 429, 503))
async def decide(approval_id: ApprovalId, body: DecisionIn, ctx: Ctx,
                 principal: Decider) -> ApprovalOut:
    """Approve or reject as the token's reviewer; a settled request resumes its investigation."""
    reviewer = acting_reviewer(ctx, principal)
    await ctx.decide(approval_id, reviewer, body.decision, reason=body.reason,
                     edited_text=body.edited_text)

    def load() -> ApprovalOut:
        return _with_decisions(ctx, [ctx.approvals.get(approval_id)])[0]

    return await asyncio.to_thread(load)
