"""One error hierarchy, rendered by one set of handlers as `{"detail": ..., "code": ...}`."""

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.db import is_database_unavailable

logger = logging.getLogger(__name__)


class AppError(Exception):
    """An error the client should see: a message, an HTTP status and a machine-readable code."""

    status_code = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code
        self.headers = headers


class BadRequestError(AppError):
    status_code = 400
    code = "bad_request"


class UnauthorizedError(AppError):
    status_code = 401
    code = "unauthorized"


class ForbiddenError(AppError):
    status_code = 403
    code = "forbidden"


class NotFoundError(AppError):
    status_code = 404
    code = "not_found"


class ConflictError(AppError):
    status_code = 409
    code = "conflict"


class GoneError(AppError):
    """What was asked for existed but is gone for good (an expired or unsent attachment)."""

    status_code = 410
    code = "gone"


class InvalidInputError(AppError):
    """A request that parsed but makes no sense (rendered like a validation error)."""

    status_code = 422
    code = "validation_error"


class PayloadTooLargeError(AppError):
    status_code = 413
    code = "payload_too_large"


class ServiceUnavailableError(AppError):
    status_code = 503
    code = "service_unavailable"


def error_body(detail: object, code: str) -> dict[str, object]:
    return {"detail": detail, "code": code}


def _status_code_name(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return JSONResponse(
        error_body(exc.message, exc.code), status_code=exc.status_code, headers=exc.headers
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        error_body(exc.detail, _status_code_name(exc.status_code)),
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Keep FastAPI's field list, minus echoed input (it may hold secrets or be huge).
    errors = [
        {key: value for key, value in error.items() if key not in ("input", "ctx", "url")}
        for error in exc.errors()
    ]
    return JSONResponse(jsonable_encoder(error_body(errors, "validation_error")), status_code=422)


async def _database_error(_: Request, exc: Exception) -> JSONResponse:
    # Connection refused, server restarting, pool exhausted: the client (or Meta) should retry.
    cause = getattr(exc, "orig", None) or exc
    summary = (str(cause).strip().splitlines() or [""])[0]
    logger.error("database unavailable: %s: %s", type(cause).__name__, summary)
    return JSONResponse(
        error_body("The database is unavailable; retry later.", "database_unavailable"),
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return JSONResponse(error_body("Internal server error.", "internal_error"), status_code=500)


async def _dbapi_error(request: Request, exc: Exception) -> JSONResponse:
    if is_database_unavailable(exc):
        return await _database_error(request, exc)
    return await _unexpected_error(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    """Render every error as JSON with `detail` and `code`.

    The handlers are coroutines: Starlette runs a plain function handler in the thread pool,
    and an error answer must not wait for a worker thread (they may all be busy)."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(sa_exc.DBAPIError, _dbapi_error)
    app.add_exception_handler(sa_exc.TimeoutError, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)
