"""The FastAPI application: routes, request ids and one error shape for every failure.

Every error answers ``{"error": {"code", "message", "request_id"}}`` with the status
`service.errors.http_status` gives; nothing answers with a stack trace.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import RateLimitedError, SleuthError
from core.telemetry import get_logger, log_context
from service.context import ServiceContext
from service.errors import QueueFullError, UnauthenticatedError, http_status

log = get_logger("sleuth.api")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
API_VERSION = "1"


def error_body(code: str, message: str, request_id: str,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the JSON body of an error answer."""
    body: dict[str, Any] = {"code": code, "message": message, "request_id": request_id}
    if details:
        body["details"] = details
    return {"error": body}


def _rid(request: Request) -> str:
    return str(getattr(request.state, "request_id", "")) or "-"


async def _sleuth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SleuthError)
    status = http_status(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, QueueFullError):
        headers["Retry-After"] = str(exc.retry_after_s)
    elif isinstance(exc, RateLimitedError) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    elif isinstance(exc, UnauthenticatedError):
        headers["WWW-Authenticate"] = 'Bearer realm="sleuth"'
    if status >= 500:
        log.warning("request_failed", code=exc.code, error=exc.message[:300])
    return JSONResponse(error_body(exc.code, exc.message, _rid(request)), status_code=status,
                        headers=headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
                for e in exc.errors()[:20]]
    return JSONResponse(error_body("invalid_request", "the request is not valid",
                                   _rid(request), {"problems": problems}), status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated",
            403: "forbidden"}.get(exc.status_code, "http_error")
    return JSONResponse(error_body(code, str(exc.detail), _rid(request)),
                        status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("request_crashed", error_type=type(exc).__name__)
    return JSONResponse(error_body("internal_error", "an internal error occurred; the request "
                                   "id identifies it in the logs", _rid(request)),
                        status_code=500)


class RequestIdMiddleware:
    """Give every request an id (X-Request-ID, or a new one), in its logs and its answer."""

    # plain ASGI, not BaseHTTPMiddleware: that one costs a task and a stream per request
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        rid = given if _REQUEST_ID.match(given) else f"req_{uuid.uuid4().hex[:16]}"
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("X-Request-ID", rid)
            await send(message)

        with log_context(request_id=rid):
            await self.app(scope, receive, send_with_id)


def create_app(ctx: ServiceContext) -> FastAPI:
    """Return the application over a service context."""
    from service.api import approvals, auth, health, investigations
    from service.webhooks import routes as webhooks

    app = FastAPI(title="sleuth", version=API_VERSION,
                  description="Investigates support tickets: webhooks in, cited diagnoses and "
                              "governed actions out.")
    app.state.ctx = ctx
    auth.install(app, ctx.settings)

    app.add_middleware(RequestIdMiddleware)
    app.add_exception_handler(SleuthError, _sleuth_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    app.include_router(webhooks.router)
    app.include_router(investigations.router)
    app.include_router(approvals.router)
    app.include_router(health.router)
    return app
