"""Errors of the HTTP service, under core's tree, and the HTTP status of every error.

    SleuthError
    ├── TransientError
    │   ├── QueueFullError                 queue_full            429 + Retry-After
    │   ├── RateLimitedError               rate_limited          429 + Retry-After
    │   └── QueueUnavailableError          queue_unavailable     503
    └── PermanentError
        ├── AuthError
        │   ├── UnauthenticatedError       unauthenticated       401
        │   ├── WebhookSignatureError      webhook_signature_invalid 401
        │   │   └── WebhookReplayError     webhook_stale         401
        │   └── ForbiddenError             forbidden             403
        │   (governance's ApproverRoleError, approval_role_denied, is 403 too)
        ├── InvalidRequestError            invalid_request       400 (422 for a bad body)
        │   ├── PayloadTooLargeError       payload_too_large     413
        │   └── WebhookPayloadError        webhook_payload_invalid 422
        │   (governance's approval_not_pending/_expired, approval_conflict and
        │    approval_duplicate_reviewer are 409: the request's state says no)
        ├── NotFoundError                  not_found             404
        └── ConfigurationError             configuration_invalid 503 (e.g. a source not set up)
"""

from __future__ import annotations

from core.errors import (
    AuthError,
    ConfigurationError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    SleuthError,
    TransientError,
)
from governance.approvals_store import (
    ApprovalConflictError,
    ApprovalNotPendingError,
    ApproverRoleError,
    DuplicateApproverError,
)
from service.queue.base import QueueUnavailableError


class QueueFullError(TransientError):
    """More jobs wait than the configured limit: come back later."""

    code = "queue_full"

    def __init__(self, message: str = "", *, retry_after_s: int, **details: object) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **details)
        self.retry_after_s = retry_after_s


class UnauthenticatedError(AuthError):
    """No credentials, or credentials that match nobody."""

    code = "unauthenticated"


class ForbiddenError(AuthError):
    """The caller is known but its role does not allow this."""

    code = "forbidden"


class WebhookSignatureError(AuthError):
    """The webhook's signature is missing or does not match its body."""

    code = "webhook_signature_invalid"


class WebhookReplayError(WebhookSignatureError):
    """The webhook's timestamp is too old (or too far ahead): a replay is refused."""

    code = "webhook_stale"


class PayloadTooLargeError(InvalidRequestError):
    """The request body is larger than the limit."""

    code = "payload_too_large"


class WebhookPayloadError(InvalidRequestError):
    """The webhook's body is not the payload this source sends."""

    code = "webhook_payload_invalid"


def http_status(exc: SleuthError) -> int:
    """Return the HTTP status that answers an error."""
    table: list[tuple[type[SleuthError], int]] = [
        (QueueFullError, 429), (RateLimitedError, 429), (QueueUnavailableError, 503),
        (ForbiddenError, 403), (ApproverRoleError, 403), (AuthError, 401),
        (ApprovalNotPendingError, 409), (ApprovalConflictError, 409),
        (DuplicateApproverError, 409), (PayloadTooLargeError, 413),
        (WebhookPayloadError, 422), (NotFoundError, 404), (InvalidRequestError, 400),
        (ConfigurationError, 503), (TransientError, 503),
    ]
    for kind, status in table:
        if isinstance(exc, kind):
            return status
    return 500
