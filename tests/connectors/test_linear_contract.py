"""Contract: every document the Linear connector sends is valid against Linear's schema,
and the sandbox's issues have the types that schema gives the selected fields."""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    build_schema,
    parse,
    validate,
)

import connectors.linear.connector as linear_connector
from connectors.linear.connector import SearchIssuesParams, build_filter, search_terms
from sandbox.apis.linear import run_query
from sandbox.cases import load_case

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "contracts" / "linear-schema.graphql"
CASES = ROOT / "evals" / "cases"
CASE_DIRS = sorted(p for p in CASES.iterdir() if (p / "case.yaml").is_file())


@functools.cache
def schema() -> GraphQLSchema:
    """Build Linear's published schema (once: it is large)."""
    return build_schema(SCHEMA.read_text(encoding="utf-8"))


def connector_documents() -> dict[str, str]:
    """Collect every GraphQL document the connector module can send (its *_QUERY constants)."""
    return {name: value for name, value in vars(linear_connector).items()
            if name.endswith("_QUERY") and isinstance(value, str)}


def problems(document: str) -> list[str]:
    """Return the schema validation errors of a document."""
    return [e.message for e in validate(schema(), parse(document))]


def test_the_connector_has_documents_to_check() -> None:
    assert set(connector_documents()) == {"SEARCH_ISSUES_QUERY", "GET_ISSUE_QUERY",
                                          "VIEWER_QUERY"}


@pytest.mark.parametrize("name", sorted(connector_documents()))
def test_every_document_validates_against_linear_schema(name: str) -> None:
    document = connector_documents()[name]
    assert problems(document) == []
    assert "mutation" not in document and "subscription" not in document


@pytest.mark.parametrize("broken", [
    linear_connector.GET_ISSUE_QUERY.replace("identifier", "identifer"),
    linear_connector.SEARCH_ISSUES_QUERY.replace("$filter: IssueFilter", "$filter: String"),
    linear_connector.GET_ISSUE_QUERY.replace("state { name type }", "state"),
    linear_connector.SEARCH_ISSUES_QUERY.replace("containsIgnoreCase", "x").replace(
        "issues(filter:", "issues(filtr:"),
])
def test_a_broken_document_fails_validation(broken: str) -> None:
    assert problems(broken) != []


def conform(value: Any, kind: GraphQLOutputType, where: str) -> list[str]:
    """Return where `value` does not have the schema type `kind` (JSON as Linear sends it)."""
    if isinstance(kind, GraphQLNonNull):
        if value is None:
            return [f"{where}: null for a non-null field"]
        return conform(value, kind.of_type, where)
    if value is None:
        return []
    if isinstance(kind, GraphQLList):
        if not isinstance(value, list):
            return [f"{where}: not a list"]
        return [p for i, v in enumerate(value) for p in conform(v, kind.of_type, f"{where}[{i}]")]
    if isinstance(kind, GraphQLObjectType):
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        found: list[str] = []
        for key, item in value.items():
            field = kind.fields.get(key)
            if field is None:
                found.append(f"{where}.{key}: not a field of {kind.name}")
            else:
                found += conform(item, field.type, f"{where}.{key}")
        return found
    if isinstance(kind, GraphQLEnumType):
        return [] if value in kind.values else [f"{where}: not a {kind.name}"]
    assert isinstance(kind, GraphQLScalarType)
    expected: dict[str, tuple[type, ...]] = {
        "String": (str,), "ID": (str,), "Boolean": (bool,), "Int": (int,),
        "Float": (int, float), "DateTime": (str,), "JSON": (object,)}
    ok = isinstance(value, expected.get(kind.name, (object,)))
    if kind.name in ("Int", "Float") and isinstance(value, bool):
        ok = False
    if ok and kind.name == "DateTime":
        try:
            ok = datetime.fromisoformat(value).tzinfo is not None
        except ValueError:
            ok = False
    return [] if ok else [f"{where}: {value!r} is not a {kind.name}"]


def issue_type() -> GraphQLObjectType:
    """Return Linear's Issue type."""
    kind = schema().get_type("Issue")
    assert isinstance(kind, GraphQLObjectType)
    return kind


@pytest.mark.parametrize("case_dir", CASE_DIRS, ids=lambda p: p.name)
def test_world_issues_conform_to_the_issue_type(case_dir: Path) -> None:
    issues = load_case(case_dir).world.linear["issues"]
    assert issues
    for issue in issues:
        assert conform(issue, GraphQLNonNull(issue_type()), issue["identifier"]) == []
        # the world holds exactly the fields the connector selects
        assert set(issue) == {"id", "identifier", "title", "description", "url", "priority",
                              "createdAt", "updatedAt", "state", "labels", "team"}


@pytest.mark.parametrize("broken", [
    {"priority": "high"}, {"identifier": None}, {"createdAt": "yesterday"},
    {"labels": {"nodes": [{"name": 3}]}}, {"assignee_name": "x"}, {"state": "Todo"},
])
def test_a_broken_issue_does_not_conform(broken: dict[str, Any]) -> None:
    issue = load_case(CASE_DIRS[0]).world.linear["issues"][0]
    assert conform({**issue, **broken}, GraphQLNonNull(issue_type()), "issue") != []


@pytest.mark.parametrize("case_dir", CASE_DIRS, ids=lambda p: p.name)
def test_connector_documents_execute_on_every_world(case_dir: Path) -> None:
    world = load_case(case_dir).world
    variants = [SearchIssuesParams(),
                SearchIssuesParams(query="timeout errors", match="all", labels=["bug"],
                                   states=["started", "unstarted", "backlog", "triage"]),
                SearchIssuesParams(query="log viewer", match="any")]
    for params in variants:
        status, body = run_query(world, {
            "query": linear_connector.SEARCH_ISSUES_QUERY,
            "variables": {"filter": build_filter(search_terms(params.query), params, "GW"),
                          "first": 50, "orderBy": "updatedAt"}})
        assert (status, body.get("errors")) == (200, None)
        for node in body["data"]["issues"]["nodes"]:
            assert conform(node, GraphQLNonNull(issue_type()), "node") == []
    for issue in world.linear["issues"]:
        status, body = run_query(world, {"query": linear_connector.GET_ISSUE_QUERY,
                                         "variables": {"id": issue["identifier"]}})
        assert status == 200 and body["data"]["issue"] == issue
