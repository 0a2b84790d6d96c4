"""One error body for every failure: `{"error": {"code": ..., "message": ...}}`.

    ApiError(status, code, message)   raised by routes and dependencies
    404/405 from routing, 422 from validation (and dates out of range), 503 when a store is down (TransientError),
    500 for anything else (logged; the body says only "internal")
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from evmonitor.errors import TransientError

__all__ = ["ApiError", "ErrorBody", "ERROR_RESPONSES", "install_error_handlers"]

log = logging.getLogger("evmonitor.api")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


ERROR_RESPONSES: dict[int | str, dict] = {
    401: {"model": ErrorBody, "description": "no valid token"},
    403: {"model": ErrorBody, "description": "the token lacks the scope"},
    422: {"model": ErrorBody, "description": "a parameter is invalid"},
    503: {"model": ErrorBody, "description": "a store is unreachable"},
}

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          406: "not_acceptable", 422: "invalid_request"}  # fmt: skip


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # keep the exception's headers: a 405 says which methods are allowed (Allow, RFC 9110)
        return error(exc.status_code, _CODES.get(exc.status_code, "error"), str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error(422, "invalid_request", f"{where}: {str(first.get('msg', 'invalid')).removeprefix('Value error, ')}")

    @app.exception_handler(OverflowError)
    async def _range(request: Request, exc: OverflowError) -> JSONResponse:
        # only a parameter's date arithmetic overflows (until=0001-01-01 minus 30 days)
        return error(422, "invalid_request", f"a date or time is out of range: {exc}")

    @app.exception_handler(TransientError)
    async def _down(request: Request, exc: TransientError) -> JSONResponse:
        return error(503, "unavailable", str(exc))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("api: %s %s failed", request.method, request.url.path)
        return error(500, "internal", "internal error (see the API's log)")
