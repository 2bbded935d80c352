"""The Linear connector: search the tracker for known bugs and read one issue.

Every GraphQL document the connector can send is a module constant ending in
`_QUERY`; user input only ever travels in `variables`, never in the document.
The contract test validates each of them against Linear's published schema.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from connectors.base import Connector, Params, bad_payload, operation
from connectors.linear.client import LinearClient
from connectors.linear.config import LinearConfig
from core.domain import Evidence
from core.errors import ConfigurationError
from core.resilience import Attempt, ResiliencePolicy
from core.telemetry import Metrics

ISSUE_FIELDS = """
fragment IssueFields on Issue {
  id identifier title description url priority createdAt updatedAt
  state { name type }
  labels { nodes { name } }
  team { key }
}
"""

SEARCH_ISSUES_QUERY = """
query SearchIssues($filter: IssueFilter, $first: Int, $orderBy: PaginationOrderBy) {
  issues(filter: $filter, first: $first, orderBy: $orderBy) {
    nodes { ...IssueFields }
    pageInfo { hasNextPage }
  }
}
""" + ISSUE_FIELDS

GET_ISSUE_QUERY = """
query GetIssue($id: String!) {
  issue(id: $id) { ...IssueFields }
}
""" + ISSUE_FIELDS

VIEWER_QUERY = """
query Viewer {
  viewer { id }
}
"""

IDENTIFIER = r"^[A-Z][A-Z0-9]{0,9}-\d{1,7}$"
StateType = Literal["triage", "backlog", "unstarted", "started", "completed", "canceled"]
PRIORITY = {0: "none", 1: "urgent", 2: "high", 3: "medium", 4: "low"}
# the server ranks nothing: fetch a full page and rank by term hits here
_FETCH = 50
_MAX_TERMS = 8
_STOPWORDS = frozenset({"a", "an", "and", "are", "at", "for", "from", "in", "is", "it", "of",
                        "on", "or", "the", "to", "with"})
_LABEL = r"^\w[\w .:/+-]{0,49}$"


class SearchIssuesParams(Params):
    """Free text (words matched in title or description), labels, state types."""

    query: str = Field("", max_length=200)
    labels: list[str] = Field(default_factory=list, max_length=10)
    states: list[StateType] = Field(default_factory=list, max_length=6)
    match: Literal["any", "all"] = "any"
    limit: int = Field(10, ge=1, le=50)

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.match(_LABEL, name):
                raise ValueError(f"not a label name: {name[:60]!r}")
        return value


class GetIssueParams(Params):
    """One issue by its identifier, e.g. GW-123."""

    identifier: str = Field(pattern=IDENTIFIER)

    @field_validator("identifier", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value


class _Named(BaseModel):
    name: str


class _State(_Named):
    type: str


class _Labels(BaseModel):
    nodes: list[_Named]


class _Team(BaseModel):
    key: str


class IssueNode(BaseModel):
    """An issue as the connector's queries select it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    identifier: str
    title: str
    description: str | None = None
    url: str
    priority: float
    createdAt: AwareDatetime  # Linear's field names; it always sends the offset
    updatedAt: AwareDatetime
    state: _State
    labels: _Labels
    team: _Team


def search_terms(text: str) -> list[str]:
    """Split free text into at most 8 distinct lower-case words worth matching."""
    terms: list[str] = []
    for word in re.findall(r"\w[\w.+#-]*", text.lower()):
        word = word.strip(".-")
        if len(word) >= 2 and word not in _STOPWORDS and word not in terms:
            terms.append(word[:64])
    return terms[:_MAX_TERMS]


def build_filter(terms: list[str], params: SearchIssuesParams,
                 team_key: str | None) -> dict[str, Any]:
    """Return the IssueFilter variable for a search."""
    parts: list[dict[str, Any]] = []
    per_term = [{"or": [{"title": {"containsIgnoreCase": t}},
                        {"description": {"containsIgnoreCase": t}}]} for t in terms]
    if per_term:
        parts.append({"and": per_term} if params.match == "all"
                     else {"or": [c for p in per_term for c in p["or"]]})
    if params.labels:
        parts.append({"labels": {"name": {"in": list(params.labels)}}})
    if params.states:
        parts.append({"state": {"type": {"in": list(params.states)}}})
    if team_key:
        parts.append({"team": {"key": {"eq": team_key}}})
    return {"and": parts} if parts else {}


def _age(delta: timedelta) -> str:
    hours = max(0.0, delta.total_seconds() / 3600)  # clocks disagree: never a negative age
    if hours < 48:
        return f"{round(hours)} h"
    return f"{round(hours / 24)} days"


class LinearConnector(Connector):
    """Reads issues from Linear's GraphQL API (queries only)."""

    name = "linear"
    config_model = LinearConfig

    def __init__(self, config: LinearConfig, *, policy: ResiliencePolicy, metrics: Metrics,
                 clock: Callable[[], datetime] | None = None) -> None:
        if not isinstance(config, LinearConfig):
            raise ConfigurationError("linear: needs a LinearConfig")
        super().__init__(config, policy=policy, metrics=metrics, clock=clock)
        self._team_key = config.team_key
        self._client = LinearClient(config)

    @operation("search_issues", SearchIssuesParams,
               "Find issues whose title or description holds the words, by labels and states.")
    async def search_issues(self, params: SearchIssuesParams,
                            attempt: Attempt) -> list[Evidence]:
        """Return matching issues, the most term hits first, then the most recently updated."""
        terms = search_terms(params.query)
        variables = {"filter": build_filter(terms, params, self._team_key),
                     "first": _FETCH, "orderBy": "updatedAt"}
        data = await self._client.execute(SEARCH_ISSUES_QUERY, variables, attempt)
        connection = data.get("issues")
        raw = connection.get("nodes") if isinstance(connection, dict) else None
        if not isinstance(raw, list):
            raise bad_payload("linear", "issues.nodes is not a list")
        nodes = [self._parse(node) for node in raw]
        scored = []
        for node in nodes:
            title, text = node.title.lower(), (node.description or "").lower()
            hits = [t for t in terms if t in title or t in text]
            score = sum(2 if t in title else 1 for t in hits)
            scored.append((score, node.updatedAt, node, hits))
        scored.sort(key=lambda row: (row[0], row[1]), reverse=True)
        return [self._evidence(node, {"matched_terms": hits, "score": score, "query": terms})
                for score, _, node, hits in scored[: params.limit]]

    @operation("get_issue", GetIssueParams, "Read one issue by its identifier, e.g. GW-123.")
    async def get_issue(self, params: GetIssueParams, attempt: Attempt) -> list[Evidence]:
        """Return the issue named by `identifier` (Linear's issue(id:) accepts identifiers)."""
        data = await self._client.execute(GET_ISSUE_QUERY, {"id": params.identifier}, attempt)
        return [self._evidence(self._parse(data.get("issue")), {})]

    async def _ping(self, attempt: Attempt) -> None:
        data = await self._client.execute(VIEWER_QUERY, {}, attempt)
        if not isinstance(data.get("viewer"), dict):
            raise bad_payload("linear", "viewer missing")

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    @staticmethod
    def _parse(node: Any) -> IssueNode:
        try:
            return IssueNode.model_validate(node)
        except ValidationError as exc:
            raise bad_payload("linear", f"issue: {exc.errors()[0]['msg']}") from None

    def _evidence(self, node: IssueNode, extra: dict[str, Any]) -> Evidence:
        now = self.now()
        labels = [label.name for label in node.labels.nodes]
        priority = int(node.priority)
        state_type = node.state.type
        summary = (
            f"{node.identifier} '{node.title[:120]}' is {node.state.name} ({state_type}), "
            f"priority {PRIORITY.get(priority, priority)}"
            f"{', labels ' + ', '.join(labels) if labels else ', no labels'}; "
            f"opened {_age(now - node.createdAt)} ago, updated {_age(now - node.updatedAt)} ago."
        )
        data = {
            "id": node.id, "identifier": node.identifier, "title": node.title,
            "description": (node.description or "")[:2000], "url": node.url,
            "priority": priority, "priority_label": PRIORITY.get(priority, "unknown"),
            "created_at": node.createdAt.isoformat(), "updated_at": node.updatedAt.isoformat(),
            "state": node.state.name, "state_type": state_type,
            "open": state_type not in ("completed", "canceled"),
            "labels": labels, "team": node.team.key,
            "age_days": round((now - node.createdAt).total_seconds() / 86400, 2),
            "days_since_update": round((now - node.updatedAt).total_seconds() / 86400, 2),
            **extra,
        }
        return Evidence(source="linear", ref=node.identifier,
                        title=f"{node.identifier}: {node.title}"[:200], summary=summary,
                        data=data, url=node.url, observed_at=now)
