"""Schemathesis over the whole app (webhooks included): no 5xx, answers match the OpenAPI document.

Every operation gets generated requests, valid and invalid, with an admin token that acts
as a reviewer, so authenticated routes are exercised past their auth; webhooks get no
valid signature and must refuse in a documented way. Bounded: 25 examples per operation
and mode.

(schemathesis' `from_fixture` + `parametrize` does not run on pytest 9, so the operations
are listed here and a test checks that the list is the document's.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from core.settings import Settings
from service.api.app import create_app
from service.context import build_context
from tests.service.api_support import ADA, api_settings

OPERATIONS = [
    ("POST", "/v1/webhooks/zendesk"),
    ("POST", "/v1/webhooks/intercom"),
    ("POST", "/v1/webhooks/generic"),
    ("GET", "/v1/investigations"),
    ("GET", "/v1/investigations/{investigation_id}"),
    ("GET", "/v1/investigations/{investigation_id}/events"),
    ("GET", "/v1/approvals"),
    ("GET", "/v1/approvals/{approval_id}"),
    ("POST", "/v1/approvals/{approval_id}/decision"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
]


# the bearer token goes through schemathesis' auth, so its negative cases (no token) stay
# negative; extra query parameters are ignored by design (clients add cache busters); an
# oversized webhook body is refused with 413, which is a rejection too
CONFIG = schemathesis.Config.from_dict({
    "auth": {"openapi": {"bearerAuth": {"bearer": ADA}}},
    "generation": {"allow-extra-parameters": False},
    "checks": {"negative_data_rejection": {"expected-statuses": [
        "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429",
        "5xx"]}},
})


@pytest.fixture
def api_schema(make_settings: Callable[..., Settings],
               tmp_path: Path) -> Iterator[schemathesis.BaseSchema]:
    ctx = build_context(api_settings(make_settings, tmp_path, rate_limit="100000/minute"))
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", create_app(ctx), config=CONFIG)
    finally:
        ctx.engine.dispose()


def test_every_operation_is_tested(api_schema: schemathesis.BaseSchema) -> None:
    documented = {(method.upper(), path) for path, item in api_schema.raw_schema["paths"].items()
                  for method in item}
    assert documented == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms(api_schema: schemathesis.BaseSchema, method: str, path: str) -> None:
    operation = api_schema[path][method]
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                      operation.as_strategy(GenerationMode.NEGATIVE))

    statuses: list[int] = []

    @given(case=cases)
    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    def check(case: schemathesis.Case) -> None:
        statuses.append(case.call_and_validate().status_code)

    check()
    if "security" in api_schema.raw_schema["paths"][path][method.lower()]:
        # the token was sent: some requests got past authentication
        assert set(statuses) - {401, 403}, statuses
