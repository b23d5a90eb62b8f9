"""Every error the HTTP service answers, and the one handler that renders them all.

The body is always::

    {"error": {"status": 404, "code": "not_found", "message": "…", "request_id": "…",
               "details": [...]}}

``code`` is machine-readable and stable, ``message`` says what to change, ``details``
lists per-item problems (a query parameter, a record of an upload) and ``request_id``
is the ``X-Request-ID`` header of the answer, to quote to an operator. Nothing else: no
stack trace, no SQL, and a refusal never says whether what was asked for exists.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from fueltrace.errors import BrokerUnavailable, FuelTraceError, TransientError, UsageError
from warehouse.cases import CaseConflict
from warehouse.trace import NotFound

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer other than success: status, stable code, message for people."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers = headers or {}
        if code:
            self.code = code


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"

    def __init__(self, message: str = "a valid bearer token is required: send "
                 "`Authorization: Bearer ft_…` (tokens come from `fueltrace token create`)",
                 ) -> None:  # fmt: skip
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="fueltrace"'})


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class ResourceNotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class InvalidRequest(ApiError):
    status, code = 422, "invalid_request"


class RateLimited(ApiError):
    status, code = 429, "rate_limited"


class Unavailable(ApiError):
    status, code = 503, "unavailable"


class QueryTimeout(Unavailable):
    code = "query_timeout"


class ErrorDetail(BaseModel):
    """One problem among several: a parameter or a record, and what is wrong with it."""

    model_config = {"extra": "allow"}
    message: str


class ErrorInfo(BaseModel):
    status: int = Field(description="The HTTP status, repeated.")
    code: str = Field(description="Stable machine-readable code, e.g. not_found, "
                      "invalid_request, records_rejected, query_timeout, rate_limited.")
    message: str = Field(description="What went wrong and what to change.")
    request_id: str = Field(description="The answer's X-Request-ID, to quote to an operator.")
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: ErrorInfo


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "-"))


def response(error: ApiError, request_id: str) -> JSONResponse:
    """The one shape, for a request id (also where no Request exists: middleware)."""
    body = {"error": {"status": error.status, "code": error.code, "message": error.message,
                      "request_id": request_id, "details": error.details}}
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def render(request: Request, error: ApiError) -> JSONResponse:
    return response(error, _request_id(request))


#: FastAPI's answer to a body it could not decode (not UTF-8, nested too deeply).
_UNPARSED_BODY = "There was an error parsing the body"
_NOT_JSON = "the body is not JSON (UTF-8, at most a few levels deep)"


def _invalid(exc: RequestValidationError) -> ApiError:
    """Pydantic's errors as one detail per parameter or body field: a query, path or
    header parameter is named ``query.since`` (not ``query.since.datetime``, the member of
    its union pydantic tried), a body field by its path in the body."""
    details: dict[str, dict[str, Any]] = {}
    for item in exc.errors():
        loc = tuple(str(x) for x in item.get("loc", ()))
        if item.get("type") == "json_invalid":
            why = (item.get("ctx") or {}).get("error") or item.get("msg")
            return InvalidRequest(f"{_NOT_JSON}: {why} at character "
                                  f"{loc[-1] if len(loc) > 1 else 0}", code="malformed_json",
                                  details=[{"message": "not JSON", "where": "body"}])  # fmt: skip
        if loc and loc[0] in ("query", "path", "header", "cookie"):
            loc = loc[:2]
        where = ".".join(x for x in loc if x != "body") or "body"
        if where in details:  # another member of the same union: one message is enough
            continue
        details[where] = {"message": f"{where}: {item.get('msg')}", "where": where}
    summary = "; ".join(d["message"] for d in list(details.values())[:3])
    return InvalidRequest(f"invalid request: {summary}", details=list(details.values()))


def as_api_error(exc: Exception) -> ApiError:
    """A domain error (or a framework's) as the answer it deserves."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, NotFound):
        return ResourceNotFound(exc.message)
    if isinstance(exc, CaseConflict):
        return Conflict(exc.message, code="illegal_transition",
                        details=[{"message": "allowed next states", "allowed": list(exc.allowed)}])
    if isinstance(exc, UsageError):
        return InvalidRequest(exc.message, code="invalid_parameter")
    if isinstance(exc, TransientError):  # the detail (addresses, paths) goes to the log only
        what = "broker" if isinstance(exc, BrokerUnavailable) else "warehouse"
        return Unavailable(f"the {what} is unavailable just now; retry shortly",
                           headers={"Retry-After": "5"})  # fmt: skip
    if isinstance(exc, RequestValidationError):
        return _invalid(exc)
    if isinstance(exc, StarletteHTTPException) and exc.status_code == 400 \
            and exc.detail == _UNPARSED_BODY:  # fmt: skip
        return InvalidRequest(f"{_NOT_JSON}; send it with Content-Type: application/json",
                              code="malformed_json",
                              details=[{"message": "not JSON", "where": "body"}])  # fmt: skip
    if isinstance(exc, StarletteHTTPException):
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request",
                 413: "payload_too_large"}
        error = ApiError(str(exc.detail), code=codes.get(exc.status_code, "http_error"),
                         headers=dict(exc.headers or {}))  # fmt: skip
        error.status = exc.status_code
        return error
    return ApiError("internal error; quote the request_id to an operator")


def install(app: FastAPI) -> None:
    """Route every exception through :func:`render`."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        error = as_api_error(exc)
        if error.status >= 500 and not isinstance(exc, ApiError):
            log.error("request failed status=%d request_id=%s method=%s path=%s error=%s: %s",
                      error.status, _request_id(request), request.method, request.url.path,
                      type(exc).__name__, exc)  # fmt: skip
        return render(request, error)

    for kind in (ApiError, FuelTraceError, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(kind, handle)


def unexpected(request_id: str, method: str, path: str, exc: Exception) -> JSONResponse:
    """The 500 answer to an exception no handler knows (a bug): logged with its traceback
    here, answered without it."""
    log.error("request failed request_id=%s method=%s path=%s error=%s: %s", request_id,
              method, path, type(exc).__name__, exc, exc_info=exc)  # fmt: skip
    return response(ApiError("internal error; quote the request_id to an operator"),
                    request_id)  # fmt: skip


#: The error answers every authenticated route may give, for the OpenAPI document.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No token, or an invalid, expired or revoked one."},
    403: {"model": ErrorBody, "description": "The token's role or scope does not allow this."},
    422: {"model": ErrorBody, "description": "A parameter or the body is invalid."},
    503: {"model": ErrorBody, "description": "The warehouse or broker is unavailable, or the "
          "query ran past its time bound (code query_timeout)."},
}
