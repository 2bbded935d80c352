"""Tracker writes: file a bug in Linear (`issueCreate`) and link a known issue to the ticket.

Idempotency: `IssueCreateInput.id` lets the caller choose the new issue's id
(a UUID in v4 format). The id is derived from the idempotency key (sha256 of
the key, with the v4 version and variant bits set), so every attempt and every
resume of one action asks for the same id. Linear cannot create two issues with
one id: a repeated create is refused, and the effector then reads the issue with
that id and reports it as already applied.

`link_known_issue` is written on the ticket, not in Linear: the effector checks
that the issue exists (so a made-up identifier fails instead of being linked),
then posts an internal note naming it through the Zendesk client, with the
Zendesk marker-tag idempotency. Support reads the ticket; Linear's
`attachmentLinkURL` would put the link on the issue instead and would need the
ticket's URL, which the action does not carry.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connectors.linear.client import LinearClient
from connectors.linear.config import LinearConfig
from core.domain import ActionType
from core.errors import BadResponseError, InvalidRequestError, NotFoundError
from core.resilience import Attempt, ResiliencePolicy
from governance.effectors.base import ActionParams, Applied, Effector, EffectorAction, parse_params
from governance.effectors.ledger import Ledger
from governance.effectors.zendesk import ZendeskClient

ISSUE_CREATE = """
mutation SleuthIssueCreate($input: IssueCreateInput!) {
  issueCreate(input: $input) { success issue { id identifier url title } }
}
"""
ISSUE_BY_ID = """
query SleuthIssue($id: String!) {
  issue(id: $id) { id identifier url title }
}
"""


def issue_id_for(key: str) -> str:
    """Return the deterministic issue id (UUID v4 format) of the action with `key`."""
    digest = hashlib.sha256(f"sleuth-linear-issue:{key}".encode()).digest()[:16]
    return str(uuid.UUID(bytes=digest, version=4))


class LinearWriteConfig(BaseModel):
    """Where Linear's GraphQL API is, a key allowed to create issues, and the team to file in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr
    team_id: str = Field(min_length=1, max_length=64, description="the team's UUID")
    url: str = Field("https://api.linear.app/graphql", max_length=500)
    label_ids: list[str] = Field(default_factory=list, max_length=10,
                                 description="labels every filed bug gets, e.g. 'from-support'")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("url must start with https:// or http://")
        return value


class BugParams(ActionParams):
    """What to file; the description is the action's text."""

    title: str = Field(min_length=3, max_length=255)
    priority: int | None = Field(None, ge=0, le=4, description="0 none, 1 urgent … 4 low")


class LinkParams(ActionParams):
    """Which tracker issue to link: an identifier (GW-123) or a UUID."""

    issue: str = Field(pattern=r"^([A-Za-z][A-Za-z0-9]{0,9}-[0-9]{1,7}|[0-9a-fA-F-]{36})$")


class LinearWriter:
    """Creates and reads issues through the connectors' GraphQL client."""

    def __init__(self, config: LinearWriteConfig) -> None:
        self.config = config
        self._client = LinearClient(LinearConfig(api_key=config.api_key, url=config.url))

    async def issue(self, ref: str, attempt: Attempt) -> dict[str, Any]:
        """Return the issue with this id or identifier (NotFoundError when there is none)."""
        data = await self._client.execute(ISSUE_BY_ID, {"id": ref}, attempt)
        issue = data.get("issue")
        if not isinstance(issue, dict) or not isinstance(issue.get("identifier"), str):
            raise NotFoundError(f"linear: no issue {ref[:40]}")
        return issue

    async def create_once(self, fields: dict[str, Any], *, key: str,
                          attempt: Attempt) -> Applied:
        """Create the issue with the key's id, or find it when an earlier try created it."""
        issue_id = issue_id_for(key)
        payload = {**fields, "id": issue_id, "teamId": self.config.team_id}
        if self.config.label_ids:
            payload["labelIds"] = list(self.config.label_ids)
        try:
            data = await self._client.execute(ISSUE_CREATE, {"input": payload}, attempt)
        except (InvalidRequestError, NotFoundError) as refused:
            # whatever words Linear uses for "already exists": if an earlier attempt or run
            # created the issue, it is there under our id
            try:
                found = await self.issue(issue_id, attempt)
            except NotFoundError:
                raise refused from None
            return Applied(found["identifier"], str(found.get("url", "")), replayed=True)
        created = data.get("issueCreate")
        issue = created.get("issue") if isinstance(created, dict) else None
        if not isinstance(created, dict) or created.get("success") is not True \
                or not isinstance(issue, dict) or not isinstance(issue.get("identifier"), str):
            raise BadResponseError("linear: issueCreate did not return the issue")
        return Applied(issue["identifier"], str(issue.get("url", "")))

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()


class LinearEffector(Effector):
    """Files bug reports in the tracker."""

    name = "linear"
    action_types: ClassVar[frozenset[ActionType]] = frozenset({ActionType.CREATE_BUG_REPORT})

    def __init__(self, config: LinearWriteConfig, *, policy: ResiliencePolicy, ledger: Ledger,
                 budget_s: float | None = None) -> None:
        super().__init__(policy=policy, ledger=ledger, budget_s=budget_s)
        self.writer = LinearWriter(config)

    async def _apply(self, action: EffectorAction, key: str, attempt: Attempt) -> Applied:
        params = parse_params(BugParams, action)
        source = f"investigation `{action.investigation_id}`"
        if action.ticket_id:
            source += f", ticket {action.ticket_id}"
        fields: dict[str, Any] = {
            "title": params.title,
            "description": f"{action.text.strip()}\n\n---\nFiled by sleuth from {source}.".lstrip(),
        }
        if params.priority is not None:
            fields["priority"] = params.priority
        return await self.writer.create_once(fields, key=key, attempt=attempt)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self.writer.aclose()


class KnownIssueLinker(Effector):
    """Links an existing tracker issue to the ticket with an internal note."""

    name = "linear_link"
    action_types: ClassVar[frozenset[ActionType]] = frozenset({ActionType.LINK_KNOWN_ISSUE})

    def __init__(self, linear: LinearWriter, zendesk: ZendeskClient, *, policy: ResiliencePolicy,
                 ledger: Ledger, budget_s: float | None = None) -> None:
        super().__init__(policy=policy, ledger=ledger, budget_s=budget_s)
        self.linear = linear
        self.zendesk = zendesk

    async def _apply(self, action: EffectorAction, key: str, attempt: Attempt) -> Applied:
        params = parse_params(LinkParams, action)
        if not action.ticket_id:
            raise InvalidRequestError("link_known_issue: the action names no ticket")
        issue = await self.linear.issue(params.issue, attempt)
        lines = [f"Known issue {issue['identifier']}: {issue.get('title', '')}".rstrip(": "),
                 str(issue.get("url", ""))]
        if action.text.strip():
            lines += ["", action.text.strip()]
        note = {"comment": {"body": "\n".join(lines), "public": False}}
        applied = await self.zendesk.update_once(action.ticket_id, note, key=key,
                                                 attempt=attempt)
        return Applied(issue["identifier"], applied.external_id or "", applied.replayed)
