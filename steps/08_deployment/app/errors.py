"""RFC 9457 problem+json bodies for every error the service answers with."""

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, cast

from asyncpg.exceptions import PostgresConnectionError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.logging import request_id_var
from app.repository import EmailTakenError, InvalidCursorError
from app.security import PasswordHashingBusyError

logger = logging.getLogger("app.errors")

PROBLEM_JSON = "application/problem+json"

# Friendlier sentences for the details Starlette fills with the bare status phrase.
_DEFAULT_DETAILS = {
    400: "The request could not be understood.",
    401: "Authentication is required to access this resource.",
    403: "You are not allowed to do this.",
    404: "No resource exists at this path.",
    405: "This method is not allowed on this path.",
    413: "The request body is too large.",
    500: "The server failed to handle this request; the request id identifies it in the logs.",
    503: "The service is temporarily unavailable; try again shortly.",
}

# The methods a 405's Allow header can name, in the order it names them.
_HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")

# Exceptions meaning "PostgreSQL is not answering": a 503 the client may retry, not a 500.
DATABASE_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,  # connection refused or reset, DNS failure
    TimeoutError,  # asyncpg's connect timeout
    PostgresConnectionError,
    OperationalError,
    InterfaceError,
    PoolTimeoutError,  # every pooled connection stayed busy for pool_timeout
)
# SQLSTATEs of a statement PostgreSQL gave up on, not a broken one: it ran past
# statement_timeout (or was cancelled), or waited past lock_timeout for a lock.
# asyncpg's dialect raises both as a plain DBAPIError.
_GAVE_UP_SQLSTATES = frozenset({"57014", "55P03"})  # query_canceled, lock_not_available
# What a client should wait before retrying a 503 from the database.
_DATABASE_RETRY_AFTER = "1"


def problem_body(status: int, detail: str | None, instance: str, **extra: Any) -> dict[str, Any]:
    """Build the RFC 9457 body shared by every error response."""
    return {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or _DEFAULT_DETAILS.get(status, HTTPStatus(status).description),
        "instance": instance,
        "request_id": request_id_var.get(),
        **extra,
    }


def problem_response(
    status: int,
    detail: str | None,
    instance: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """Build a problem+json response; every 401 gets its WWW-Authenticate challenge."""
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(
        problem_body(status, detail, instance, **extra),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at the request's path, for a 405's Allow header."""
    # Starlette's Allow names only the first route whose path matched, and
    # FastAPI makes one route per method: GET, PATCH and DELETE of /users/{id}
    # are three routes. RFC 9110 asks for all of them, so ask every route.
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    )


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    error = cast(StarletteHTTPException, exc)
    # Starlette fills detail with the status phrase ("Not Found"): say something useful instead.
    detail = error.detail if error.detail != HTTPStatus(error.status_code).phrase else None
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return problem_response(error.status_code, detail, request.url.path, headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    error = cast(RequestValidationError, exc)
    # Only where, what and why: never the input, which may be a password.
    errors = [
        {"loc": list(item["loc"]), "msg": item["msg"], "type": item["type"]}
        for item in error.errors()
    ]
    return problem_response(
        422, "The request is invalid; see errors.", request.url.path, errors=errors
    )


async def _email_taken(request: Request, _exc: Exception) -> JSONResponse:
    return problem_response(
        409, "An account with this email address already exists.", request.url.path
    )


async def _invalid_cursor(request: Request, _exc: Exception) -> JSONResponse:
    errors = [
        {
            "loc": ["query", "cursor"],
            "msg": "This cursor was not issued by this service.",
            "type": "invalid_cursor",
        }
    ]
    return problem_response(
        422, "The request is invalid; see errors.", request.url.path, errors=errors
    )


def is_database_unavailable(error: BaseException) -> bool:
    """True when an error means PostgreSQL could not answer (a 503), not a bug (a 500)."""
    if isinstance(error, DATABASE_UNAVAILABLE_ERRORS):
        return True
    if not isinstance(error, DBAPIError):
        return False
    # A connection cut in the middle of a statement or a COMMIT can surface as a
    # plain DBAPIError; SQLAlchemy then marks it as having invalidated the connection.
    sqlstate = getattr(error.orig, "sqlstate", None)
    return error.connection_invalidated or sqlstate in _GAVE_UP_SQLSTATES


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if not is_database_unavailable(exc):
        raise exc  # a bug: RequestGuardMiddleware logs it and answers 500
    return await _database_unavailable(request, exc)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The exception type is enough to diagnose; its text may hold connection details.
    logger.warning("Database unavailable.", extra={"error": type(exc).__name__})
    return problem_response(
        503,
        "The database is unavailable; try again shortly.",
        request.url.path,
        {"Retry-After": _DATABASE_RETRY_AFTER},
    )


async def _password_hashing_busy(request: Request, _exc: Exception) -> JSONResponse:
    # Answer at once: a client retrying in a second costs less than a queue of
    # logins each waiting seconds for the CPU.
    return problem_response(
        503,
        "Too many password checks are in progress; try again in a second.",
        request.url.path,
        {"Retry-After": "1"},
    )


def internal_error_response(path: str) -> JSONResponse:
    """The 500 for an unexpected exception: says nothing about the cause."""
    return problem_response(500, None, path)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every expected error as problem+json (the rest: RequestGuardMiddleware)."""
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(EmailTakenError, _email_taken)
    app.add_exception_handler(InvalidCursorError, _invalid_cursor)
    app.add_exception_handler(PasswordHashingBusyError, _password_hashing_busy)
    # SQLAlchemy's driver errors too: a 503 for a lost connection, a 500 for the rest.
    for error_type in (*DATABASE_UNAVAILABLE_ERRORS, DBAPIError):
        app.add_exception_handler(error_type, _database_error)
