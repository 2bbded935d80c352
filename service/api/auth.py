"""API tokens with roles: who may read investigations and approvals, and who may decide.

Tokens come from a YAML file (`SLEUTH_SERVICE__TOKENS_FILE`) that holds only their
sha256 digests::

    tokens:
      - {name: dashboards, role: reader, token_sha256: "<64 hex>"}
      - {name: ava-console, role: reviewer, reviewer: ava, token_sha256: "<64 hex>"}
      - {name: ops, role: admin, reviewer: ada, token_sha256: "<64 hex>"}

Roles: `reader` reads investigations, their events and approvals; `reviewer` also decides
approvals, acting as the governance reviewer it names (whose governance role then decides
which actions it may approve); `admin` may do everything a reviewer may. Without a tokens
file no token is accepted: only health, metrics and (signed) webhooks answer.

Clients send ``Authorization: Bearer <token>``. The presented token is hashed and compared
with every digest in constant time (`hmac.compare_digest`), so timing says nothing about
which digests exist. Make a token and its digest with `generate_token` and `hash_token`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import ConfigurationError
from core.settings import Settings
from service.api.ratelimit import TokenRateLimiter, build_rate_limiter
from service.errors import ForbiddenError, UnauthenticatedError

SCHEME_NAME = "bearerAuth"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class ApiRole(StrEnum):
    """What a token may do; each role includes the ones before it."""

    READER = "reader"
    REVIEWER = "reviewer"
    ADMIN = "admin"


_RANK = {ApiRole.READER: 0, ApiRole.REVIEWER: 1, ApiRole.ADMIN: 2}


class TokenEntry(BaseModel):
    """One API token as configured: its name, the sha256 of the token, its role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME, description="who holds it; the rate-limit key and log name")
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hash_token(token)")
    role: ApiRole
    reviewer: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$",
                                 description="the governance reviewer a reviewer/admin acts as")

    @model_validator(mode="after")
    def _reviewer_fits_role(self) -> TokenEntry:
        if self.role is ApiRole.REVIEWER and self.reviewer is None:
            raise ValueError("a reviewer token must name the governance reviewer it acts as")
        if self.role is ApiRole.READER and self.reviewer is not None:
            raise ValueError("a reader token cannot act as a reviewer; give it role reviewer")
        return self


class TokensConfig(BaseModel):
    """The tokens file: `tokens:` with a list of entries (a bare list is taken too)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: list[TokenEntry] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, value: Any) -> Any:
        return {"tokens": value} if isinstance(value, list) else value

    @model_validator(mode="after")
    def _unique(self) -> TokensConfig:
        for attr in ("name", "token_sha256"):
            seen: set[str] = set()
            for entry in self.tokens:
                value = getattr(entry, attr)
                if value in seen:
                    shown = entry.name if attr == "token_sha256" else value
                    raise ValueError(f"two tokens have the same {attr} ({shown})")
                seen.add(value)
        return self


class TokensFileError(ConfigurationError):
    """The tokens file cannot be read or is not valid; names the file and the field."""

    code = "tokens_file_invalid"

    def __init__(self, file: Path, field: str, message: str) -> None:
        where = f"{file}: {field}" if field else str(file)
        super().__init__(f"{where}: {message}", file=str(file), field=field)


@dataclass(frozen=True)
class Principal:
    """The caller a token identifies."""

    name: str
    role: ApiRole
    reviewer: str | None = None

    def allows(self, role: ApiRole) -> bool:
        """Say whether this caller has `role` or a stronger one."""
        return _RANK[self.role] >= _RANK[role]


def hash_token(token: str) -> str:
    """Return the sha256 hex digest of a token, as the tokens file stores it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def generate_token() -> str:
    """Return a new random API token (256 bits)."""
    return f"slt_{secrets.token_urlsafe(32)}"


class ApiTokens:
    """The configured tokens; identifies the caller of a presented token."""

    def __init__(self, entries: Iterable[TokenEntry] = ()) -> None:
        self._entries = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, token: str) -> Principal | None:
        """Return the caller whose digest matches `token`, or None."""
        digest = hash_token(token)
        found: TokenEntry | None = None
        for entry in self._entries:  # no early exit: the same work for every token
            if hmac.compare_digest(digest, entry.token_sha256):
                found = entry
        if found is None:
            return None
        return Principal(name=found.name, role=found.role, reviewer=found.reviewer)


def read_tokens_file(path: Path) -> TokensConfig:
    """Read and validate a tokens file, or raise TokensFileError naming file and field."""
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TokensFileError(path, "", f"cannot read the tokens file: {exc}") from None
    try:
        return TokensConfig.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "tokens"
        raise TokensFileError(path, where, err["msg"]) from None


def load_tokens(path: Path | None) -> ApiTokens:
    """Return the tokens of `path`; none at all when no file is configured."""
    return ApiTokens(read_tokens_file(path).tokens) if path is not None else ApiTokens()


def write_tokens_file(path: Path, entries: Iterable[TokenEntry | Mapping[str, Any]]) -> Path:
    """Write a tokens file readable only by its owner; a mapping may give `token` to hash."""
    parsed: list[TokenEntry] = []
    for entry in entries:
        if isinstance(entry, Mapping):
            fields = dict(entry)
            plain = fields.pop("token", None)
            if plain is not None:
                fields["token_sha256"] = hash_token(str(plain))
            entry = TokenEntry.model_validate(fields)
        parsed.append(entry)
    config = TokensConfig(tokens=parsed)
    text = yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    # written whole then renamed: a reader never sees half a file
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# -- FastAPI ----------------------------------------------------------------------------

bearer = HTTPBearer(auto_error=False, scheme_name=SCHEME_NAME,
                    description="An API token: `Authorization: Bearer <token>`")


def install(app: FastAPI, settings: Settings) -> None:
    """Load the tokens and the rate limiter onto the app (fails fast on a broken config)."""
    app.state.tokens = load_tokens(settings.service.tokens_file)
    app.state.rate_limiter = build_rate_limiter(settings)


def _state(app: FastAPI) -> tuple[ApiTokens, TokenRateLimiter]:
    if not hasattr(app.state, "tokens"):
        install(app, app.state.ctx.settings)
    return app.state.tokens, app.state.rate_limiter


def require(role: ApiRole) -> Callable[..., Awaitable[Principal]]:
    """Return a dependency that authenticates the caller, rate-limits it and checks `role`."""

    async def authorized(request: Request, credentials: HTTPAuthorizationCredentials | None
                         = Security(bearer)) -> Principal:  # noqa: B008 - FastAPI's idiom
        tokens, limiter = _state(request.app)
        if credentials is None:
            raise UnauthenticatedError("send an API token: Authorization: Bearer <token>")
        principal = tokens.authenticate(credentials.credentials)
        if principal is None:
            raise UnauthenticatedError("the API token is not valid")
        # counted before the role check: refused calls cost as much as allowed ones
        await limiter.check(principal.name)
        if not principal.allows(role):
            raise ForbiddenError(f"token {principal.name!r} ({principal.role}) may not do this; "
                                 f"it needs role {role}", token=principal.name)
        request.state.principal = principal
        return principal

    return authorized
