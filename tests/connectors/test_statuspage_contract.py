"""Contract: every Statuspage sandbox response, for every case, has the documented v2 shape."""

from __future__ import annotations

import copy
import json
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from sandbox.apis import statuspage as statuspage_api
from sandbox.cases import load_case

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tests" / "contracts" / "statuspage-v2.schema.json").read_text())
CASE_DIRS = sorted(p for p in (ROOT / "evals" / "cases").iterdir() if (p / "case.yaml").is_file())
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

# jsonschema checks "date-time" only with an optional package; check it here, strictly
formats = FormatChecker()


@formats.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not RFC3339.match(value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    datetime.fromisoformat(value)
    return True


@formats.checks("date", raises=ValueError)
def _date(value: object) -> bool:
    if isinstance(value, str):
        date.fromisoformat(value)
    return True


def validator(definition: str) -> Draft202012Validator:
    """Return a validator of one endpoint's response shape."""
    return Draft202012Validator({**SCHEMA, "$ref": f"#/$defs/{definition}"},
                                format_checker=formats)


def problems(definition: str, body: Any) -> list[str]:
    """Return the schema violations of a response body."""
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator(definition).iter_errors(body)]


def client_for(case_dir: Path) -> tuple[TestClient, list[str]]:
    """Return an in-process client of the case's Statuspage sandbox, and its page ids."""
    world = load_case(case_dir).world
    app = Starlette(routes=[Mount("/statuspage", routes=statuspage_api.routes(world))])
    return TestClient(app), [str(p["page"]["id"]) for p in world.statuspage["pages"]]


def test_the_schema_itself_is_valid() -> None:
    Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("case_dir", CASE_DIRS, ids=lambda p: p.name)
def test_every_response_of_every_page_conforms(case_dir: Path) -> None:
    client, page_ids = client_for(case_dir)
    assert len(page_ids) == 6
    with client:
        for page_id in page_ids:
            base = f"/statuspage/{page_id}/api/v2"
            for path, definition in (("summary.json", "summary"),
                                     ("incidents.json", "incidents"),
                                     ("status.json", "status_json")):
                answer = client.get(f"{base}/{path}")
                assert answer.status_code == 200
                assert problems(definition, answer.json()) == [], (page_id, path)
            manage = client.get(f"/statuspage/manage/v1/pages/{page_id}/incidents",
                                headers={"Authorization": "OAuth sandbox"})
            assert manage.status_code == 200
            assert problems("manage_incidents", manage.json()) == []


def test_summary_lists_only_unresolved_incidents() -> None:
    client, _ = client_for(ROOT / "evals" / "cases" / "pub-04-openai-outage")
    with client:
        body = client.get("/statuspage/oa5m2n8q4r1t/api/v2/summary.json").json()
    assert [i["id"] for i in body["incidents"]] == ["1lc1w8l2jheq"]
    assert body["status"] == {"indicator": "critical", "description": "Major System Outage"}


def broken_summaries() -> list[tuple[str, Any]]:
    """Return summary.json bodies each broken in one documented way."""
    client, _ = client_for(ROOT / "evals" / "cases" / "pub-04-openai-outage")
    with client:
        good = client.get("/statuspage/oa5m2n8q4r1t/api/v2/summary.json").json()
    cases: list[tuple[str, Any]] = []

    def broken(name: str, change: Any) -> None:
        body = copy.deepcopy(good)
        change(body)
        cases.append((name, body))

    broken("indicator", lambda b: b["status"].update(indicator="catastrophic"))
    broken("component status", lambda b: b["components"][0].update(status="down"))
    broken("incident status", lambda b: b["incidents"][0].update(status="fixed"))
    broken("impact", lambda b: b["incidents"][0].update(impact="huge"))
    broken("timestamp", lambda b: b["incidents"][0].update(created_at="yesterday"))
    broken("naive timestamp", lambda b: b["page"].update(updated_at="2026-06-18T16:40:52"))
    broken("missing status", lambda b: b.pop("status"))
    broken("update without body", lambda b: b["incidents"][0]["incident_updates"][0].pop("body"))
    broken("resolved in summary", lambda b: b["incidents"][0].update(
        status="resolved", resolved_at="2026-06-18T17:00:00.000Z"))
    broken("maintenance status on incident", lambda b: b["incidents"][0].update(
        status="completed"))
    return cases


@pytest.mark.parametrize(("name", "body"), broken_summaries(), ids=lambda v: str(v)[:30])
def test_a_broken_response_is_rejected(name: str, body: Any) -> None:
    assert problems("summary", body) != [], name


def test_a_broken_incident_list_is_rejected() -> None:
    assert problems("incidents", {"page": {"id": "x"}, "incidents": []}) != []
    assert problems("manage_incidents", [{"id": "x", "name": "n"}]) != []
