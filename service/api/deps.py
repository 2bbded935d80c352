"""Dependencies shared by the routes."""

from __future__ import annotations

from fastapi import Request

from service.context import ServiceContext


def get_ctx(request: Request) -> ServiceContext:
    """Return the process's service context."""
    ctx: ServiceContext = request.app.state.ctx
    return ctx


def request_id(request: Request) -> str:
    """Return the id of this request (from X-Request-ID, or made up)."""
    return str(getattr(request.state, "request_id", ""))
