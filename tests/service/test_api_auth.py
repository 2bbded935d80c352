"""API tokens and roles, and rate limits per token."""

from __future__ import annotations

import stat
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from core.errors import ConfigurationError, RateLimitedError
from core.settings import Settings
from service.api.auth import (
    ApiRole,
    TokensFileError,
    generate_token,
    hash_token,
    load_tokens,
    read_tokens_file,
    write_tokens_file,
)
from service.api.ratelimit import TokenRateLimiter, parse_limit
from service.context import ServiceContext
from tests.service.api_support import ADA, AVA, GHOST, OPS, READER, api_client, api_settings, auth

DIGEST = "a" * 64


@pytest.fixture
async def api(make_settings: Callable[..., Settings],
              tmp_path: Path) -> AsyncIterator[tuple[ServiceContext, httpx.AsyncClient]]:
    async with api_client(api_settings(make_settings, tmp_path)) as pair:
        yield pair


# -- the tokens file ------------------------------------------------------------------


def test_hash_token_is_sha256_hex() -> None:
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    token = generate_token()
    assert token.startswith("slt_") and len(token) > 40 and token != generate_token()


def test_written_file_round_trips_without_plain_tokens(tmp_path: Path) -> None:
    path = write_tokens_file(tmp_path / "sub" / "tokens.yaml", [
        {"name": "r", "token": "secret-reader-token", "role": "reader"},
        {"name": "v", "token_sha256": DIGEST, "role": "reviewer", "reviewer": "ava"}])
    text = path.read_text()
    assert "secret-reader-token" not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    tokens = load_tokens(path)
    found = tokens.authenticate("secret-reader-token")
    assert found is not None and found.name == "r" and found.role is ApiRole.READER
    assert tokens.authenticate("secret-reader-token ") is None
    assert len(read_tokens_file(path).tokens) == 2


def test_bare_list_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(f"- {{name: a, role: admin, token_sha256: '{DIGEST}'}}\n")
    assert read_tokens_file(path).tokens[0].role is ApiRole.ADMIN


@pytest.mark.parametrize(("text", "field"), [
    ("tokens:\n  - {name: a, role: reader, token_sha256: nothex}\n", "tokens.0.token_sha256"),
    (f"tokens:\n  - {{name: a, role: boss, token_sha256: '{DIGEST}'}}\n", "tokens.0.role"),
    (f"tokens:\n  - {{name: a, role: reviewer, token_sha256: '{DIGEST}'}}\n", "tokens.0"),
    (f"tokens:\n  - {{name: a, role: reader, reviewer: ava, token_sha256: '{DIGEST}'}}\n",
     "tokens.0"),
    (f"tokens:\n  - {{name: a, role: reader, token_sha256: '{DIGEST}', extra: 1}}\n",
     "tokens.0.extra"),
    (f"tokens:\n  - {{name: a, role: reader, token_sha256: '{DIGEST}'}}\n"
     f"  - {{name: a, role: admin, token_sha256: '{'b' * 64}'}}\n", "tokens"),
    ("tokens: [unclosed\n", ""),
])
def test_broken_file_names_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(text)
    with pytest.raises(TokensFileError) as caught:
        read_tokens_file(path)
    assert isinstance(caught.value, ConfigurationError)
    assert str(path) in caught.value.message
    assert caught.value.details["field"] == field


def test_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(TokensFileError, match="cannot read"):
        load_tokens(tmp_path / "absent.yaml")


# -- the API --------------------------------------------------------------------------


async def test_no_token_is_401_with_challenge(api: tuple[ServiceContext, httpx.AsyncClient]
                                              ) -> None:
    _, client = api
    for path in ("/v1/investigations", "/v1/approvals", "/v1/investigations/inv_x"):
        response = await client.get(path)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["error"]["code"] == "unauthenticated"
        assert response.json()["error"]["request_id"] == response.headers["X-Request-ID"]


async def test_unknown_or_malformed_token_is_401(api: tuple[ServiceContext, httpx.AsyncClient]
                                                 ) -> None:
    _, client = api
    for header in ("Bearer nope", f"Basic {READER}", READER, f"Bearer {READER}x"):
        response = await client.get("/v1/investigations", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.json()["error"]["code"] == "unauthenticated"


async def test_reader_reads_but_cannot_decide(api: tuple[ServiceContext, httpx.AsyncClient]
                                              ) -> None:
    _, client = api
    assert (await client.get("/v1/investigations", headers=auth(READER))).status_code == 200
    assert (await client.get("/v1/approvals", headers=auth(READER))).status_code == 200
    response = await client.post("/v1/approvals/1/decision", headers=auth(READER),
                                 json={"decision": "approve"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("token", [GHOST, OPS])
async def test_token_without_a_known_reviewer_cannot_decide(
        api: tuple[ServiceContext, httpx.AsyncClient], token: str) -> None:
    _, client = api
    response = await client.post("/v1/approvals/1/decision", headers=auth(token),
                                 json={"decision": "approve"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("token", [AVA, ADA])
async def test_reviewer_and_admin_reach_governance(
        api: tuple[ServiceContext, httpx.AsyncClient], token: str) -> None:
    _, client = api
    response = await client.post("/v1/approvals/999/decision", headers=auth(token),
                                 json={"decision": "approve"})
    assert response.status_code == 404  # past auth: governance has no such request
    assert response.json()["error"]["code"] == "approval_not_found"


async def test_without_tokens_file_no_token_works_but_health_does(
        service_ctx: ServiceContext, client: httpx.AsyncClient) -> None:
    assert service_ctx.settings.service.tokens_file is None
    response = await client.get("/v1/investigations", headers=auth(READER))
    assert response.status_code == 401
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/metrics")).status_code == 200


async def test_openapi_declares_bearer_scheme(api: tuple[ServiceContext, httpx.AsyncClient]
                                              ) -> None:
    _, client = api
    doc = (await client.get("/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": doc["components"][
            "securitySchemes"]["bearerAuth"]["description"]}
    assert doc["paths"]["/v1/approvals/{approval_id}/decision"]["post"]["security"] == [
        {"bearerAuth": []}]
    assert "security" not in doc["paths"]["/healthz"]["get"]
    responses = doc["paths"]["/v1/approvals/{approval_id}/decision"]["post"]["responses"]
    assert {"401", "403", "404", "409", "422", "429"} <= set(responses)


# -- rate limits ----------------------------------------------------------------------


async def test_rate_limit_per_token_gives_429_with_retry_after(
        make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    settings = api_settings(make_settings, tmp_path, rate_limit="3/minute")
    async with api_client(settings) as (_, client):
        for _ in range(3):
            assert (await client.get("/v1/approvals", headers=auth(READER))).status_code == 200
        limited = await client.get("/v1/approvals", headers=auth(READER))
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        # the 3/minute window frees its first request a minute after it was made
        assert 55 <= int(limited.headers["Retry-After"]) <= 60
        # another token has its own budget
        assert (await client.get("/v1/approvals", headers=auth(AVA))).status_code == 200


def test_bad_rate_limit_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"service\.rate_limit"):
        parse_limit("lots")


async def test_unreachable_redis_falls_back_to_memory() -> None:
    limiter = TokenRateLimiter(parse_limit("2/minute"), redis_url="redis://127.0.0.1:1/0")
    await limiter.check("t")
    await limiter.check("t")
    with pytest.raises(RateLimitedError):
        await limiter.check("t")


@pytest.mark.redis
async def test_replicas_share_counts_in_redis(redis_url: str) -> None:
    prefix = f"sleuth-test-{uuid.uuid4().hex[:8]}"
    first, second = (TokenRateLimiter(parse_limit("3/minute"), redis_url=redis_url,
                                      key_prefix=prefix) for _ in range(2))
    assert first.shared
    await first.check("t")
    await second.check("t")
    await first.check("t")
    with pytest.raises(RateLimitedError) as caught:
        await second.check("t")
    assert caught.value.retry_after is not None and 1 <= caught.value.retry_after <= 60
