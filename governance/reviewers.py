"""Reviewers: the people who approve actions, each an authenticated identity with one role.

Reviewers come from a YAML file (or a list built in code)::

    demo: false                     # true only in the development demo file
    reviewers:
      - {name: dana, role: billing_admin, password_hash: "scrypt$16384$8$1$<salt>$<hash>"}

Make a hash with `python -m governance.reviewers` (it prompts for the password).
Passwords are stored as scrypt hashes with a random salt and compared in constant time.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import AuthError, ConfigurationError
from governance.taxonomy import Role

DEMO_FILE = Path(__file__).resolve().parent / "reviewers.demo.yaml"
# OWASP's minimum for scrypt; about 50 ms and 16 MiB per hash
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_MAX_N = 2**20  # refuse hashes that would cost more than ~1 GiB to check


class ReviewerAuthError(AuthError):
    """A reviewer name or password was refused."""

    code = "reviewer_auth_failed"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=128 * r * (n + p + 2) + 2**20, dklen=32)


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R,
                  p: int = SCRYPT_P) -> str:
    """Hash a password as `scrypt$n$r$p$salt$hash` with a random 16-byte salt."""
    salt = secrets.token_bytes(16)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(_scrypt(password, salt, n, r, p))}"


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    """Split an encoded hash into its parameters, or raise ValueError."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("password_hash must look like scrypt$n$r$p$salt$hash")
    n, r, p = (int(x) for x in parts[1:4])
    if n < 2 or n & (n - 1) or n > _MAX_N or not 1 <= r <= 64 or not 1 <= p <= 16:
        raise ValueError("password_hash has unsafe or impossible scrypt parameters")
    salt, digest = _unb64(parts[4]), _unb64(parts[5])
    if len(salt) < 8 or len(digest) != 32:
        raise ValueError("password_hash has a short salt or a hash that is not 32 bytes")
    return n, r, p, salt, digest


def verify_password(password: str, encoded: str) -> bool:
    """Say whether `password` matches an encoded hash (constant-time compare)."""
    try:
        n, r, p, salt, digest = _parse(encoded)
    except ValueError:
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), digest)


class Reviewer(BaseModel):
    """A person who may approve actions of the levels their role is allowed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    role: Role
    password_hash: str = Field(repr=False, exclude=True)

    @field_validator("password_hash")
    @classmethod
    def _well_formed(cls, value: str) -> str:
        _parse(value)
        return value


class ReviewersConfig(BaseModel):
    """Reviewers as configured: a list, and whether it is the development demo set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    demo: bool = False
    reviewers: list[Reviewer] = Field(min_length=1)


class Reviewers:
    """The configured reviewers; authenticates them by name and password."""

    def __init__(self, reviewers: Iterable[Reviewer], *, is_demo: bool = False,
                 source: Path | None = None) -> None:
        self._by_name: dict[str, Reviewer] = {}
        for reviewer in reviewers:
            if reviewer.name in self._by_name:
                raise ConfigurationError(f"reviewer {reviewer.name!r} is listed twice")
            self._by_name[reviewer.name] = reviewer
        self.is_demo = is_demo
        self.source = source
        # checked for unknown names too, so a miss costs as long as a wrong password
        self._decoy = hash_password(secrets.token_urlsafe(16))

    @classmethod
    def from_file(cls, path: Path) -> Reviewers:
        """Load reviewers from a YAML file, or raise `ConfigurationError` saying what is wrong."""
        try:
            raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
            parsed = ReviewersConfig.model_validate(raw)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigurationError(f"{path}: cannot read reviewers: {exc}") from None
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ConfigurationError(f"{path}: {where}: {err['msg']}", file=str(path)) from None
        reviewers = cls.from_config(parsed, source=path)
        # a copy of the demo file with its flag removed is still the demo set
        reviewers.is_demo = parsed.demo or path.resolve() == DEMO_FILE
        return reviewers

    @classmethod
    def from_config(cls, config: ReviewersConfig, *, source: Path | None = None) -> Reviewers:
        """Build reviewers from a validated configuration."""
        return cls(config.reviewers, is_demo=config.demo, source=source)

    @classmethod
    def demo(cls) -> Reviewers:
        """Load the development demo reviewers (never for production)."""
        return cls.from_file(DEMO_FILE)

    def __iter__(self) -> Iterator[Reviewer]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str) -> Reviewer | None:
        """Return the reviewer called `name`, or None."""
        return self._by_name.get(name)

    def authenticate(self, name: str, password: str) -> Reviewer:
        """Return the reviewer when name and password match, else raise `ReviewerAuthError`."""
        reviewer = self._by_name.get(name)
        ok = verify_password(password, reviewer.password_hash if reviewer else self._decoy)
        if reviewer is None or not ok:
            # one message for both cases: the answer must not reveal which names exist
            raise ReviewerAuthError("unknown reviewer or wrong password", reviewer=name)
        return reviewer


def load_reviewers(path: Path | None, *, production: bool) -> Reviewers:
    """Load the reviewers to use: `path`, else the demo set; production refuses the demo set."""
    if path is None:
        if production:
            raise ConfigurationError("production needs SLEUTH_GOVERNANCE__REVIEWERS_FILE; the demo "
                                     "reviewers are for development only")
        path = DEMO_FILE
    reviewers = Reviewers.from_file(path)
    if reviewers.is_demo and production:
        raise ConfigurationError(f"{path} holds the demo reviewers; production refuses them")
    return reviewers


def main() -> None:
    """Print a password hash for a reviewers file (prompts for the password)."""
    password = getpass.getpass("password: ")
    if password != getpass.getpass("again: "):
        raise SystemExit("the passwords differ")
    print(hash_password(password))


if __name__ == "__main__":
    main()
