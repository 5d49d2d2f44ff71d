"""Errors as HTTP answers: every failure is a JSON body with a status code, never a bare 500."""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from durafn.core.errors import (
    FunctionNotFound,
    InstanceAlreadyExists,
    InstanceNotFound,
    InstanceNotRunning,
    InstanceStillRunning,
    PayloadTooLarge,
    StoreError,
)

log = logging.getLogger("durafn.host")


class BadRequest(Exception):
    """Malformed input from an HTTP caller (400)."""


class Unauthorized(Exception):
    """A key is required and none, or a wrong one, was given (401)."""


# Most specific first: the first matching class decides the status code.
STATUS_OF: list[tuple[type[BaseException], int]] = [
    (Unauthorized, 401),
    (BadRequest, 400),
    (PayloadTooLarge, 413),
    (InstanceNotFound, 404),
    (FunctionNotFound, 400),
    (InstanceAlreadyExists, 409),
    (InstanceStillRunning, 409),
    (InstanceNotRunning, 410),
    (StoreError, 503),
    (ValueError, 400),
    (TypeError, 400),
]


def error_response(status_code: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status_code)


async def handle_known_error(request: Request, exc: Exception) -> Response:
    for kind, code in STATUS_OF:
        if isinstance(exc, kind):
            if code >= 500:
                log.error("request %s %s failed: %s", request.method, request.url.path, exc)
            headers = {"WWW-Authenticate": "x-functions-key"} if code == 401 else None
            response = error_response(code, type(exc).__name__, str(exc))
            if headers:
                response.headers.update(headers)
            return response
    return await handle_unexpected_error(request, exc)


async def handle_http_exception(request: Request, exc: Any) -> Response:
    assert isinstance(exc, HTTPException)
    names = {404: "NotFound", 405: "MethodNotAllowed"}
    response = error_response(
        exc.status_code, names.get(exc.status_code, "HTTPError"), exc.detail or ""
    )
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def handle_unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("request %s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, "InternalServerError", "the host failed; see its log")


def exception_handlers() -> dict[Any, Any]:
    handlers: dict[Any, Any] = {HTTPException: handle_http_exception}
    for kind, _ in STATUS_OF:
        handlers[kind] = handle_known_error
    return handlers
