"""Response models of the webhook routes and their OpenAPI description.

Errors use the API's one error shape, `service.api.schemas.ErrorResponse`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from service.api.schemas import ErrorResponse


class Links(BaseModel):
    """Where to follow the investigation."""

    self: str = Field(examples=["/v1/investigations/inv_0123456789abcdef0123"])
    events: str = Field(examples=["/v1/investigations/inv_0123456789abcdef0123/events"])


class Accepted(BaseModel):
    """A delivery taken: its investigation (the earlier one, for a duplicate)."""

    investigation_id: str
    status: str = Field(description="the investigation's status (queued for a new one)")
    duplicate: bool = Field(description="true when this event was delivered before")
    links: Links


class IgnoredEvent(BaseModel):
    """A verified delivery that is not a ticket to investigate (an Intercom ping)."""

    status: Literal["ignored"] = "ignored"
    reason: str


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description, **extra}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("invalid_request: the Content-Length header is not a number"),
    401: _error("webhook_signature_invalid: signature missing or wrong; webhook_stale: the "
                "signed time is outside the tolerance (a replay)"),
    413: _error("payload_too_large: the body is over service.body_limit_bytes"),
    422: _error("webhook_payload_invalid: not JSON, or not this source's payload (the "
                "message names the field)"),
    429: _error("queue_full: too many jobs wait; retry after Retry-After seconds",
                headers={"Retry-After": {"description": "seconds to wait",
                                         "schema": {"type": "integer"}}}),
    500: _error("internal_error: a bug; the request id identifies it in the logs"),
    503: _error("configuration_invalid: this source's secret is not set; queue_unavailable: "
                "the queue cannot be reached (retry: deliveries are deduplicated)"),
}


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Return the model's JSON schema with its `$defs` inlined (valid inside OpenAPI)."""
    schema = model.model_json_schema()
    defs: dict[str, Any] = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**resolve(defs[ref.removeprefix("#/$defs/")]), **resolve(rest)}
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def request_doc(model: type[BaseModel],
                headers: list[tuple[str, str, bool]]) -> dict[str, Any]:
    """Return `openapi_extra` documenting a raw JSON body and headers (name, text, required)."""
    return {
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": inline_schema(model)}}},
        "parameters": [{"name": name, "in": "header", "required": required,
                        "description": text, "schema": {"type": "string"}}
                       for name, text, required in headers],
    }
