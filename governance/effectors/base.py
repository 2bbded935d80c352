"""The effector interface: the only code that writes to outside systems, each action once.

An effector carries out approved actions of a few types. `Effector.execute` first
asks the ledger whether the action's idempotency key is already done (then it
answers `duplicate` and sends nothing), runs the write under the core resilience
policy (retries on transient errors), and records the outcome in the ledger.
Every write also hands the key to the outside system in the form that system
understands, so that a crash after the system acted but before the ledger was
updated, or a retry after an answer was lost, still does not act twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from core.domain import ActionType
from core.errors import (
    BadResponseError,
    ConfigurationError,
    InvalidRequestError,
    SleuthError,
    TransientError,
)
from core.http import attempt_timeout as attempt_timeout
from core.http import status_error as status_error
from core.http import transport_error as transport_error
from core.resilience import Attempt, CallStats, ResiliencePolicy
from core.telemetry import get_logger

if TYPE_CHECKING:  # the ledger imports EffectResult from here
    from governance.effectors.ledger import Ledger

log = get_logger("sleuth.effectors")

ResultStatus = Literal["executed", "failed", "duplicate"]


class LedgerUnavailableError(TransientError):
    """The effector ledger could not be read or written; the action's outcome is unknown."""

    code = "ledger_unavailable"


class WriteConflictError(TransientError):
    """The outside object changed between our read and our write; read again and retry."""

    code = "write_conflict"


class UnsupportedActionError(InvalidRequestError):
    """The action was sent to an effector that does not carry out its type."""

    code = "unsupported_action"


class IdempotencyKeyMismatchError(InvalidRequestError):
    """The key given with an action is not the one derived from it."""

    code = "idempotency_key_mismatch"


def idempotency_key(investigation_id: str, index: int, action_type: str) -> str:
    """Return the action's idempotency key: sha256 of `id:index:type`, first 32 hex digits."""
    # str() of an ActionType is its value, so the enum and its text give the same key
    return hashlib.sha256(f"{investigation_id}:{index}:{action_type!s}".encode()).hexdigest()[:32]


class EffectorAction(BaseModel):
    """An approved action, as an effector receives it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    investigation_id: str = Field(min_length=1, max_length=128)
    index: int = Field(ge=0, description="the action's position among the investigation's")
    type: ActionType
    params: dict[str, Any] = Field(default_factory=dict)
    ticket_id: str | None = Field(None, max_length=128)
    text: str = Field("", max_length=60_000, description="note, reply or summary text")

    @property
    def key(self) -> str:
        """Return the idempotency key derived from the action's identity."""
        return idempotency_key(self.investigation_id, self.index, self.type.value)


class EffectResult(BaseModel):
    """What `execute` did: `duplicate` means it sent nothing because the key was done."""

    model_config = ConfigDict(frozen=True)

    status: ResultStatus
    key: str
    action_type: str = ""
    external_id: str | None = None
    detail: str = ""
    error_code: str | None = None
    replayed: bool = Field(False, description="the outside system had already applied it")
    attempts: int = 0


@dataclass(frozen=True)
class Applied:
    """What one successful write produced."""

    external_id: str | None
    detail: str = ""
    replayed: bool = False


class ActionParams(BaseModel):
    """Base of action parameter models: unknown parameters are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=2_000)


P = TypeVar("P", bound=ActionParams)


def parse_params(model: type[P], action: EffectorAction) -> P:
    """Validate an action's params, raising `InvalidRequestError` naming the first problem."""
    try:
        return model.model_validate(action.params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(params)"
        raise InvalidRequestError(f"{action.type.value}: {where}: {first['msg']}") from None


class Effector(ABC):
    """Base of the effectors: ledger check, guarded write, ledger record."""

    name: ClassVar[str]
    action_types: ClassVar[frozenset[ActionType]]

    def __init__(self, *, policy: ResiliencePolicy, ledger: Ledger,
                 budget_s: float | None = None) -> None:
        self.policy = policy
        self.ledger = ledger
        self.budget_s = budget_s

    async def execute(self, action: EffectorAction, *, key: str) -> EffectResult:
        """Carry out `action` at most once per key; raise only `LedgerUnavailableError`."""
        started = time.perf_counter()
        refusal = self._refusal(action, key)
        if refusal is not None:
            return self._log(action, started, self._failed(action, key, refusal, 0))
        try:
            recorded = await asyncio.to_thread(
                self.ledger.begin, key, action_type=action.type.value,
                investigation_id=action.investigation_id)
        except SQLAlchemyError as exc:
            # without the ledger we cannot know whether this already ran: do not act
            raise LedgerUnavailableError(f"effector ledger: {type(exc).__name__}") from None
        if recorded is not None:
            duplicate = recorded.model_copy(update={
                "status": "duplicate", "attempts": 0,
                "detail": f"already done: {recorded.detail}"[:500]})
            return self._log(action, started, duplicate)
        stats = CallStats()
        try:
            applied = await self.policy.run(lambda attempt: self._apply(action, key, attempt),
                                            budget_s=self.budget_s, stats=stats)
            result = EffectResult(
                status="executed", key=key, action_type=action.type.value,
                external_id=applied.external_id, detail=applied.detail[:500],
                replayed=applied.replayed, attempts=len(stats.attempts))
        except SleuthError as exc:
            result = self._failed(action, key, exc, len(stats.attempts))
        except Exception as exc:  # an effector bug must not leave the ledger claimed silently
            log.exception("effector_bug", effector=self.name, action_type=action.type.value)
            result = self._failed(action, key, BadResponseError(
                f"{self.name}: internal error ({type(exc).__name__})"), len(stats.attempts))
        try:
            await asyncio.to_thread(self.ledger.finish, key, result)
        except SQLAlchemyError as exc:
            # the outside system may have acted; executing again with this key is safe
            raise LedgerUnavailableError(f"effector ledger: {type(exc).__name__}") from None
        return self._log(action, started, result)

    def _refusal(self, action: EffectorAction, key: str) -> SleuthError | None:
        if action.type not in self.action_types:
            return UnsupportedActionError(f"{self.name} does not carry out {action.type.value}")
        if key != action.key:
            return IdempotencyKeyMismatchError(
                "key is not sha256(investigation_id:index:type)[:32] of the action")
        return None

    @staticmethod
    def _failed(action: EffectorAction, key: str, exc: SleuthError,
                attempts: int) -> EffectResult:
        return EffectResult(status="failed", key=key, action_type=action.type.value,
                            detail=exc.message[:500], error_code=exc.code, attempts=attempts)

    def _log(self, action: EffectorAction, started: float, result: EffectResult) -> EffectResult:
        # ids and outcome only: params and text may hold customer data
        log.info("effector_call", effector=self.name, action_type=action.type.value,
                 investigation_id=action.investigation_id, index=action.index, key=result.key,
                 status=result.status, code=result.error_code, replayed=result.replayed,
                 attempts=result.attempts,
                 duration_ms=round((time.perf_counter() - started) * 1000, 3))
        return result

    @abstractmethod
    async def _apply(self, action: EffectorAction, key: str, attempt: Attempt) -> Applied:
        """Make the write once, idempotently under `key`, within `attempt`'s timeouts."""

    async def aclose(self) -> None:  # noqa: B027 - effectors without connections keep this
        """Release clients and connections."""


class EffectorSet:
    """The effectors of a deployment, by the action types they carry out."""

    def __init__(self, effectors: Iterable[Effector]) -> None:
        self.effectors = list(effectors)
        self._by_type: dict[ActionType, Effector] = {}
        for effector in self.effectors:
            for kind in effector.action_types:
                if kind in self._by_type:
                    raise ConfigurationError(f"two effectors carry out {kind.value}")
                self._by_type[kind] = effector

    def for_type(self, action_type: ActionType) -> Effector | None:
        """Return the effector of an action type (None: no system is configured for it)."""
        return self._by_type.get(action_type)

    async def execute(self, action: EffectorAction) -> EffectResult:
        """Carry out `action` under its derived key with the effector of its type."""
        effector = self.for_type(action.type)
        if effector is None:
            return EffectResult(status="failed", key=action.key, action_type=action.type.value,
                                detail=f"no effector is configured for {action.type.value}",
                                error_code=UnsupportedActionError.code)
        return await effector.execute(action, key=action.key)

    async def aclose(self) -> None:
        """Close every effector."""
        for effector in self.effectors:
            await effector.aclose()


# -- HTTP helpers shared by the effectors that speak plain HTTP --------------------------


def json_object(system: str, response: httpx.Response) -> dict[str, Any]:
    """Decode a JSON object answer or raise `BadResponseError`."""
    try:
        body = response.json()
    except ValueError:
        raise BadResponseError(f"{system}: answer is not JSON") from None
    if not isinstance(body, dict):
        raise BadResponseError(f"{system}: answer is not a JSON object")
    return body


class LoopClient:
    """An httpx client made for the running event loop (a pool belongs to one loop)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> httpx.AsyncClient:
        """Return the client for the running loop."""
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            self._http = httpx.AsyncClient(
                follow_redirects=False, transport=httpx.AsyncHTTPTransport(retries=0),
                **self._options)
            self._loop = loop
        return self._http

    async def aclose(self) -> None:
        """Close the pool (ignored when its loop is gone)."""
        http, self._http = self._http, None
        if http is not None:
            with contextlib.suppress(RuntimeError):
                await http.aclose()
