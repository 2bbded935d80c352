"""Linear's GraphQL API over a case world, executed by graphql-core on the real schema.

Every request is parsed and validated against `tests/contracts/linear-schema.graphql`
(Linear's published SDL), so a query the real API would reject is rejected here
too. Mutations are refused (the sandbox is read-only), and so is any field,
argument or filter the sandbox does not implement, with a GraphQL error that
names it. Authentication failures answer like Linear: `AUTHENTICATION_ERROR`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLSchema,
    OperationType,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    build_schema,
    execute_sync,
    get_operation_ast,
    parse,
    validate,
    visit,
)
from graphql.language import FieldNode
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from connectors.linear.config import LinearConfig
from sandbox.cases import World

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "tests" / "contracts" / "linear-schema.graphql"
SANDBOX_KEY = "sandbox"

# What the sandbox serves, per GraphQL type; anything else is refused by name.
IMPLEMENTED: dict[str, frozenset[str]] = {
    "Query": frozenset({"issues", "issue", "viewer"}),
    "IssueConnection": frozenset({"nodes", "pageInfo"}),
    "PageInfo": frozenset({"hasNextPage", "hasPreviousPage", "startCursor", "endCursor"}),
    "Issue": frozenset({"id", "identifier", "title", "description", "url", "priority",
                        "createdAt", "updatedAt", "state", "labels", "team"}),
    "WorkflowState": frozenset({"name", "type"}),
    "IssueLabelConnection": frozenset({"nodes"}),
    "IssueLabel": frozenset({"name"}),
    "Team": frozenset({"key"}),
    "User": frozenset({"id", "name", "email"}),
}
ARGUMENTS: dict[str, frozenset[str]] = {
    "Query.issues": frozenset({"filter", "first", "orderBy", "includeArchived"}),
    "Query.issue": frozenset({"id"}),
}
_MAX_FIRST = 250  # Linear's own page-size ceiling


@functools.cache
def linear_schema() -> GraphQLSchema:
    """Build Linear's schema once per process (the SDL is large: about a second)."""
    return build_schema(SCHEMA_PATH.read_text(encoding="utf-8"))


def _refuse(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "NOT_IMPLEMENTED"})


class _Unimplemented(Visitor):
    """Collects selected fields and arguments that the sandbox does not serve."""

    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.problems: list[str] = []

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        parent = self.type_info.get_parent_type()
        name = node.name.value
        if name == "__typename" or parent is None:
            return
        where = f"{parent.name}.{name}"
        if name not in IMPLEMENTED.get(parent.name, frozenset()):
            self.problems.append(where)
            return
        for arg in node.arguments or ():
            if arg.name.value not in ARGUMENTS.get(where, frozenset()):
                self.problems.append(f"{where}({arg.name.value}:)")


def _compare(value: Any, comparator: dict[str, Any]) -> bool:
    text = value if isinstance(value, str) else None
    checks: dict[str, Callable[[Any], bool]] = {
        "eq": lambda v: text == v,
        "neq": lambda v: text != v,
        "in": lambda v: text in v,
        "nin": lambda v: text not in v,
        "eqIgnoreCase": lambda v: text is not None and text.lower() == v.lower(),
        "contains": lambda v: text is not None and v in text,
        "containsIgnoreCase": lambda v: text is not None and v.lower() in text.lower(),
        "notContainsIgnoreCase": lambda v: text is None or v.lower() not in text.lower(),
        "startsWith": lambda v: text is not None and text.startswith(v),
        "null": lambda v: (text is None) == v,
    }
    for op, operand in comparator.items():
        if operand is None:
            continue
        if op not in checks:
            raise _refuse(f"sandbox does not implement the string comparator {op!r}")
        if not checks[op](operand):
            return False
    return True


def _match_object(obj: dict[str, Any], condition: dict[str, Any], kind: str) -> bool:
    for key, comparator in condition.items():
        if comparator is None:
            continue
        if key == "and":
            ok = all(_match_object(obj, c, kind) for c in comparator)
        elif key == "or":
            ok = not comparator or any(_match_object(obj, c, kind) for c in comparator)
        elif key in obj and not isinstance(obj[key], dict):
            ok = _compare(obj[key], comparator)
        else:
            raise _refuse(f"sandbox does not implement {kind}.{key}")
        if not ok:
            return False
    return True


def _match_labels(names: list[str], condition: dict[str, Any]) -> bool:
    for key, value in condition.items():
        if value is None:
            continue
        if key == "name":  # a direct comparator on a collection means "some label"
            ok = any(_compare(n, value) for n in names)
        elif key in ("some", "every"):
            hits = [_match_object({"name": n}, value, "IssueLabelFilter") for n in names]
            ok = any(hits) if key == "some" else all(hits)
        else:
            raise _refuse(f"sandbox does not implement IssueLabelCollectionFilter.{key}")
        if not ok:
            return False
    return True


def matches(issue: dict[str, Any], condition: dict[str, Any]) -> bool:
    """Say whether a world issue passes an IssueFilter (the subset the sandbox serves)."""
    for key, value in condition.items():
        if value is None:
            continue
        if key == "and":
            ok = all(matches(issue, c) for c in value)
        elif key == "or":
            ok = not value or any(matches(issue, c) for c in value)
        elif key in ("title", "description"):
            ok = _compare(issue.get(key), value)
        elif key in ("state", "team"):
            ok = _match_object(issue.get(key) or {}, value, key)
        elif key == "labels":
            names = [n.get("name", "") for n in (issue.get("labels") or {}).get("nodes", [])]
            ok = _match_labels(names, value)
        else:
            raise _refuse(f"sandbox does not implement IssueFilter.{key}")
        if not ok:
            return False
    return True


class _Root:
    """Root resolvers over the world's issues (graphql-core calls them with info, args)."""

    def __init__(self, issues: list[dict[str, Any]]) -> None:
        self._issues = issues

    def issues(self, _info: Any, **args: Any) -> dict[str, Any]:
        first = args.get("first") or 50
        if not 0 < first <= _MAX_FIRST:
            raise GraphQLError(f"first must be between 1 and {_MAX_FIRST}",
                               extensions={"code": "INVALID_INPUT"})
        order = args.get("orderBy") or "createdAt"
        found = [i for i in self._issues if matches(i, args.get("filter") or {})]
        found.sort(key=lambda i: str(i.get(order, "")), reverse=True)
        page = found[:first]
        return {"nodes": page, "pageInfo": {
            "hasNextPage": len(found) > first, "hasPreviousPage": False,
            "startCursor": page[0]["id"] if page else None,
            "endCursor": page[-1]["id"] if page else None}}

    def issue(self, _info: Any, id: str) -> dict[str, Any]:
        key = id.strip()
        for item in self._issues:
            if key == item.get("id") or key.upper() == str(item.get("identifier", "")).upper():
                return item
        raise GraphQLError("Entity not found: Issue", extensions={
            "code": "INVALID_INPUT", "userPresentableMessage": "Could not find referenced Issue."})

    def viewer(self, _info: Any) -> dict[str, Any]:
        return {"id": "sandbox-viewer", "name": "Sandbox", "email": "sandbox@example.invalid"}


def _errors(message: str, code: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}],
                         "data": None}, status_code=status)


def run_query(world: World, payload: Any) -> tuple[int, dict[str, Any]]:
    """Validate and execute one GraphQL request body; return (HTTP status, JSON body)."""
    schema = linear_schema()
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return 400, {"errors": [{"message": "Body must hold a query string",
                                 "extensions": {"code": "BAD_USER_INPUT"}}]}
    variables = payload.get("variables") or {}
    name = payload.get("operationName")
    try:
        document = parse(payload["query"])
    except GraphQLError as exc:
        return 400, {"errors": [{**exc.formatted, "extensions": {"code": "GRAPHQL_PARSE_FAILED"}}]}
    problems = validate(schema, document)
    if problems:
        return 400, {"errors": [{**e.formatted, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}
                                for e in problems]}
    operation = get_operation_ast(document, name if isinstance(name, str) else None)
    if operation is None:
        return 400, {"errors": [{"message": "Pick one operation with operationName",
                                 "extensions": {"code": "BAD_USER_INPUT"}}]}
    if operation.operation != OperationType.QUERY:
        return 400, {"errors": [{"message": f"sandbox is read-only: {operation.operation.value} "
                                            "operations are refused",
                                 "extensions": {"code": "READ_ONLY"}}]}
    checker = _Unimplemented(TypeInfo(schema))
    visit(document, TypeInfoVisitor(checker.type_info, checker))
    if checker.problems:
        return 400, {"errors": [{"message": "sandbox does not implement: "
                                            + ", ".join(sorted(set(checker.problems))),
                                 "extensions": {"code": "NOT_IMPLEMENTED"}}]}
    result = execute_sync(schema, document, root_value=_Root(world.linear["issues"]),
                          variable_values=variables if isinstance(variables, dict) else {},
                          operation_name=name if isinstance(name, str) else None)
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [e.formatted for e in result.errors]
    return 200, body


def routes(world: World) -> list[BaseRoute]:
    """Return the Starlette route of Linear's GraphQL endpoint over `world`."""
    linear_schema()  # build now: the first request must not wait a second for it

    async def graphql_endpoint(request: Request) -> JSONResponse:
        if request.headers.get("authorization", "") not in (SANDBOX_KEY, f"Bearer {SANDBOX_KEY}"):
            return _errors("Authentication required, not authenticated", "AUTHENTICATION_ERROR")
        try:
            payload = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _errors("Body is not valid JSON", "BAD_USER_INPUT")
        status, body = run_query(world, payload)
        return JSONResponse(body, status_code=status)

    return [Route("/graphql", graphql_endpoint, methods=["POST"])]


def sandbox_config(base_url: str, world: World) -> LinearConfig:
    """Return the Linear settings that point at this sandbox (`base_url` ends in /linear)."""
    return LinearConfig(api_key=SecretStr(SANDBOX_KEY), url=f"{base_url.rstrip('/')}/graphql")
