"""Contract: the GitHub sandbox answers in the shapes of GitHub's own OpenAPI description.

`tests/contracts/github-openapi-slice.json` is a slice of GitHub's OpenAPI 3.0
document. OpenAPI 3.0 schemas are not quite JSON Schema: `nullable: true`
stands for "or null". `to_json_schema` rewrites that (at schema positions
only, never inside a `properties` map's names), and the whole document is
served to `jsonschema` through a `referencing` registry so every `$ref`
resolves inside it. Draft 4 is used because, as in OpenAPI 3.0, keywords beside
a `$ref` are ignored there.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from jsonschema import Draft4Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT4

from sandbox.apis.github import repository_object, routes
from sandbox.cases import discover, load_case
from sandbox.http import LoopbackServer

ROOT = Path(__file__).resolve().parents[2]
CASES = discover(ROOT / "evals" / "cases")
SLICE = json.loads((ROOT / "tests" / "contracts" / "github-openapi-slice.json").read_text())
URI = "urn:github-openapi-slice"

_SCHEMA_MAPS = ("properties", "patternProperties", "definitions")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_ONE = ("items", "additionalProperties", "not")


def to_json_schema(schema: Any) -> Any:
    """Return the JSON Schema (draft 4) equivalent of an OpenAPI 3.0 schema; the input is kept."""
    if not isinstance(schema, dict):
        return copy.deepcopy(schema)  # e.g. additionalProperties: true
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "nullable":
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [to_json_schema(sub) for sub in value]
        elif key in _SCHEMA_ONE:
            out[key] = to_json_schema(value)
        else:
            out[key] = copy.deepcopy(value)
    if schema.get("nullable") is not True:
        return out
    if "$ref" in out or any(k in out for k in _SCHEMA_LISTS) or "type" not in out:
        # a type list cannot reach inside a $ref or a combinator: offer null beside them
        return {"anyOf": [{"type": "null"}, out]}
    types = out["type"] if isinstance(out["type"], list) else [out["type"]]
    out["type"] = [*types, "null"] if "null" not in types else types
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


def convert_document(doc: dict[str, Any]) -> dict[str, Any]:
    """Return the OpenAPI document with every schema in it converted by `to_json_schema`."""
    out = copy.deepcopy(doc)
    components = out.get("components", {})
    components["schemas"] = {k: to_json_schema(v) for k, v in components.get("schemas", {}).items()}
    # schemas sit in response media types and in parameters, inline or in components
    holders = [*components.get("parameters", {}).values()]
    for response in components.get("responses", {}).values():
        holders += response.get("content", {}).values()
    for operations in out.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            holders += operation.get("parameters", [])
            for response in operation.get("responses", {}).values():
                holders += response.get("content", {}).values()
    for holder in holders:
        if "schema" in holder:
            holder["schema"] = to_json_schema(holder["schema"])
    return out


FORMATS = FormatChecker(formats=())
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return bool(_RFC3339.match(value)) and bool(
        datetime.fromisoformat(value.replace("Z", "+00:00")))


@FORMATS.checks("uri")
def _uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and (parts.netloc or parts.path)) and " " not in value


@FORMATS.checks("int64")
def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


REGISTRY = Registry().with_resource(URI, DRAFT4.create_resource(convert_document(SLICE)))


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def validator_for(path: str, status: str = "200") -> Draft4Validator:
    """Return a validator for the JSON body of `GET path` answering `status`, per the slice."""
    response = SLICE["paths"][path]["get"]["responses"][status]
    if "$ref" in response:  # e.g. #/components/responses/not_found
        pointer = response["$ref"].removeprefix("#")
    else:
        pointer = "/" + "/".join(_escape(s) for s in ("paths", path, "get", "responses", status))
    pointer += "/content/application~1json/schema"
    return Draft4Validator({"$ref": f"{URI}#{quote(pointer)}"}, registry=REGISTRY,
                           format_checker=FORMATS)


def assert_valid(validator: Draft4Validator, body: Any, what: str) -> None:
    """Fail with every violation, naming where it is."""
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:200]}"
                for e in validator.iter_errors(body)]
    assert not problems, f"{what}:\n" + "\n".join(problems[:20])


REPO = "/repos/{owner}/{repo}"
V_REPOSITORY = validator_for(REPO)
V_DEPLOYMENTS = validator_for(f"{REPO}/deployments")
V_DEPLOYMENT = validator_for(f"{REPO}/deployments/{{deployment_id}}")
V_NOT_FOUND = validator_for(f"{REPO}/deployments/{{deployment_id}}", "404")
V_STATUSES = validator_for(f"{REPO}/deployments/{{deployment_id}}/statuses")
V_RELEASES = validator_for(f"{REPO}/releases")
V_COMMITS = validator_for(f"{REPO}/commits")
_REL = r'<[^>]+>; rel="(next|last|prev|first)"'
LINK = re.compile(rf"^{_REL}(, {_REL})*$")


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer()
    for folder in CASES:
        srv.mount(f"gh-{folder.name}", routes(load_case(folder).world))
    with srv:
        yield srv


def _pages(http: httpx.Client, url: str, **params: Any) -> list[Any]:
    """Fetch every page by following Link headers, checking each page's header shape."""
    items: list[Any] = []
    answer = http.get(url, params={"per_page": 2, **params})
    while True:
        assert answer.status_code == 200, answer.text
        items += answer.json()
        link = answer.headers.get("link")
        if link is None:
            return items
        assert LINK.match(link), link
        nexts = [part.split(">")[0][1:] for part in link.split(", ") if 'rel="next"' in part]
        if not nexts:
            return items
        answer = http.get(nexts[0])


@pytest.mark.parametrize("folder", CASES, ids=lambda p: p.name)
def test_sandbox_answers_match_the_openapi_slice(folder: Path, server: LoopbackServer) -> None:
    world = load_case(folder).world.github
    base = f"{server.url('gh-' + folder.name)}/repos/{world['repository']}"
    with httpx.Client(headers={"Authorization": "token sandbox"}) as http:
        assert_valid(V_REPOSITORY, http.get(base).json(), "repository")
        deployments = _pages(http, f"{base}/deployments")
        assert len(deployments) == len(world["deployments"]) > 0
        assert_valid(V_DEPLOYMENTS, deployments, "deployments")
        production = _pages(http, f"{base}/deployments", environment="production")
        assert production and {d["environment"] for d in production} == {"production"}
        assert_valid(V_DEPLOYMENTS, production, "production deployments")
        for deployment in deployments:
            one = http.get(f"{base}/deployments/{deployment['id']}").json()
            assert_valid(V_DEPLOYMENT, one, f"deployment {deployment['id']}")
            statuses = _pages(http, f"{base}/deployments/{deployment['id']}/statuses")
            assert statuses, f"deployment {deployment['id']} has no statuses"
            assert_valid(V_STATUSES, statuses, f"statuses of {deployment['id']}")
        releases = _pages(http, f"{base}/releases")
        assert len(releases) == len(world["releases"]) > 0
        assert_valid(V_RELEASES, releases, "releases")
        commits = _pages(http, f"{base}/commits")
        assert len(commits) == len(world["commits"]) > 0
        assert_valid(V_COMMITS, commits, "commits")
        windowed = _pages(http, f"{base}/commits", since=commits[-1]["commit"]["committer"]["date"])
        assert_valid(V_COMMITS, windowed, "commits since")
        missing = http.get(f"{base}/deployments/1")
        assert missing.status_code == 404
        assert_valid(V_NOT_FOUND, missing.json(), "404")


# -- the validator can fail ------------------------------------------------------------------

def _sample(kind: str) -> dict[str, Any]:
    world = load_case(CASES[-1]).world.github
    if kind == "repository":
        return repository_object(world["repository"], world["commits"], "https://api.github.com")
    if kind == "status":
        return copy.deepcopy(next(iter(world["deployment_statuses"].values()))[0])
    return copy.deepcopy(world[kind][0])


@pytest.mark.parametrize(("validator", "kind", "break_it"), [
    (V_DEPLOYMENT, "deployments", lambda o: o.pop("sha")),
    (V_DEPLOYMENT, "deployments", lambda o: o.update(id="1728248498")),
    (V_DEPLOYMENT, "deployments", lambda o: o.update(payload=5)),
    (V_DEPLOYMENT, "deployments", lambda o: o.update(created_at="yesterday")),
    (V_DEPLOYMENT, "deployments", lambda o: o.update(creator={"login": "x"})),
    (V_DEPLOYMENT, "deployments", lambda o: o.update(url="not a uri")),
    (V_STATUSES, "status", lambda o: o.update(state="exploded")),
    (V_RELEASES, "releases", lambda o: o.update(draft="no")),
    (V_RELEASES, "releases", lambda o: o.update(tag_name=None)),
    (V_COMMITS, "commits", lambda o: o["commit"].pop("message")),
    (V_COMMITS, "commits", lambda o: o.update(author={"login": "no-id"})),
    (V_REPOSITORY, "repository", lambda o: o.pop("full_name")),
    (V_REPOSITORY, "repository", lambda o: o.update(private="yes")),
])
def test_validator_rejects_broken_objects(validator: Draft4Validator, kind: str,
                                          break_it: Any) -> None:
    good = _sample(kind)
    single = any(validator is v for v in (V_DEPLOYMENT, V_REPOSITORY))
    as_sent = good if single else [good]
    assert validator.is_valid(as_sent), "the unbroken sample must pass"
    break_it(good)
    assert not validator.is_valid(as_sent)


def test_nullable_fields_accept_null() -> None:
    deployment = _sample("deployments") | {"description": None, "creator": None,
                                           "performed_via_github_app": None}
    assert_valid(V_DEPLOYMENT, deployment, "nullable deployment fields")
    commit = _sample("commits") | {"author": None, "committer": {}}
    assert_valid(V_COMMITS, [commit], "nullable/empty commit author")
    assert not V_DEPLOYMENT.is_valid(deployment | {"sha": None})  # not nullable


# -- the converter ---------------------------------------------------------------------------

def _accepts(schema: dict[str, Any], value: Any) -> bool:
    return Draft4Validator(to_json_schema(schema)).is_valid(value)


def test_converter_nullable_type_and_enum() -> None:
    assert to_json_schema({"type": "string", "nullable": True}) == {"type": ["string", "null"]}
    assert to_json_schema({"type": "string", "nullable": False}) == {"type": "string"}
    enum = {"type": "string", "enum": ["a", "b"], "nullable": True}
    assert _accepts(enum, None) and _accepts(enum, "a") and not _accepts(enum, "c")
    assert not _accepts({"type": "string", "enum": ["a"]}, None)


def test_converter_nullable_ref_and_combinators() -> None:
    one_of = {"nullable": True, "oneOf": [{"type": "object", "required": ["id"]},
                                          {"type": "string"}]}
    assert _accepts(one_of, None) and _accepts(one_of, {"id": 1}) and _accepts(one_of, "x")
    assert not _accepts(one_of, 5)
    ref = to_json_schema({"$ref": "#/components/schemas/x", "nullable": True})
    assert ref == {"anyOf": [{"type": "null"}, {"$ref": "#/components/schemas/x"}]}


def test_converter_walks_schema_positions_only_and_keeps_input() -> None:
    schema = {"type": "object", "properties": {
        "nullable": {"type": "boolean"},  # a property *named* nullable is data, not a keyword
        "type": {"type": "string", "nullable": True},
        "items": {"type": "array", "items": {"type": "integer", "nullable": True}},
    }, "additionalProperties": {"type": "number", "nullable": True}}
    before = copy.deepcopy(schema)
    out = to_json_schema(schema)
    assert schema == before
    assert out["properties"]["nullable"] == {"type": "boolean"}
    assert out["properties"]["type"]["type"] == ["string", "null"]
    assert out["properties"]["items"]["items"]["type"] == ["integer", "null"]
    assert out["additionalProperties"]["type"] == ["number", "null"]


def test_no_nullable_keyword_survives_in_the_slice() -> None:
    def keywords(node: Any) -> Iterator[Any]:
        if isinstance(node, dict):
            if isinstance(node.get("nullable"), bool):
                yield node
            for value in node.values():
                yield from keywords(value)
        elif isinstance(node, list):
            for value in node:
                yield from keywords(value)

    assert any(True for _ in keywords(SLICE)), "the slice uses nullable: the test is not vacuous"
    assert not list(keywords(convert_document(SLICE)))
