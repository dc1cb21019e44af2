"""The two error dialects the emulator speaks, as Microsoft documents them.

Graph: `{"error": {"code", "message", "innerError": {"date", "request-id",
"client-request-id"}}}` (https://learn.microsoft.com/graph/errors).
Sign-in (the token endpoint): OAuth 2.0 errors with an AADSTS code at the start of
`error_description`, plus `error_codes`, `timestamp`, `trace_id`, `correlation_id`, `error_uri`
(https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


class GraphError(Exception):
    """A Graph error answer; raised anywhere below a Graph handler and rendered once."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.details = details


def graph_error_body(
    code: str,
    message: str,
    request_id: str,
    client_request_id: str,
    details: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    error["innerError"] = {
        # Graph writes this date without a zone designator.
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": request_id,
        "client-request-id": client_request_id,
    }
    return {"error": error}


def not_found(key: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried reference-property objects "
        "are not present.",
    )


def forbidden() -> GraphError:
    return GraphError(
        403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
    )


def bad_request(message: str, code: str = "Request_BadRequest") -> GraphError:
    return GraphError(400, code, message)


def conflict(prop: str) -> GraphError:
    message = f"Another object with the same value for property {prop} already exists."
    return GraphError(
        400,
        "Request_BadRequest",
        message,
        details=[{"code": "ObjectConflict", "message": message, "target": prop}],
    )


def required(prop: str, resource: str) -> GraphError:
    return bad_request(f"A value is required for property '{prop}' of resource '{resource}'.")


def invalid_value(prop: str, resource: str) -> GraphError:
    return bad_request(f"Invalid value specified for property '{prop}' of resource '{resource}'.")


def method_not_allowed() -> GraphError:
    return GraphError(
        405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target."
    )


def unknown_segment(segment: str) -> GraphError:
    return GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


class TokenError(Exception):
    """A token endpoint failure: OAuth `error`, the AADSTS number and its description."""

    def __init__(self, status: int, error: str, aadsts: int, description: str) -> None:
        super().__init__(f"AADSTS{aadsts}: {description}")
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description


def token_error_body(err: TokenError, trace_id: str, correlation_id: str) -> dict[str, Any]:
    timestamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return {
        "error": err.error,
        "error_description": (
            f"AADSTS{err.aadsts}: {err.description}\r\nTrace ID: {trace_id}\r\n"
            f"Correlation ID: {correlation_id}\r\nTimestamp: {timestamp}"
        ),
        "error_codes": [err.aadsts],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={err.aadsts}",
    }
