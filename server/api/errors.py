"""Exception handlers: whatever goes wrong, the client gets an OperationOutcome."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.api.responses import error_response
from server.errors import FhirError, Issue
from server.storage.port import StoreUnavailable

log = logging.getLogger("billable.api")

_HTTP_CODES = {404: "not-found", 405: "not-supported", 413: "too-costly", 415: "not-supported"}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FhirError)
    async def on_fhir_error(request: Request, exc: FhirError) -> Response:
        return error_response(exc.status, exc.issues, exc.headers)

    @app.exception_handler(StoreUnavailable)
    async def on_store_unavailable(request: Request, exc: StoreUnavailable) -> Response:
        log.error("store unavailable during %s %s: %s", request.method, request.url.path, exc)
        return error_response(
            503,
            [Issue("fatal", "transient", "The data store is unavailable; try again later")],
            {"Retry-After": "5"},
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "processing")
        if exc.status_code == 404:
            message = f"No FHIR endpoint at {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not supported on {request.url.path}"
        else:
            message = str(exc.detail)
        return error_response(
            exc.status_code, [Issue("error", code, message)], dict(exc.headers or {})
        )

    @app.exception_handler(RequestValidationError)
    async def on_request_invalid(request: Request, exc: RequestValidationError) -> Response:
        issues = [
            Issue("error", "invalid", f"{'.'.join(map(str, e['loc']))}: {e['msg']}")
            for e in exc.errors()
        ]
        return error_response(400, issues)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return error_response(
            500, [Issue("fatal", "exception", "Internal server error; the error was logged")]
        )
