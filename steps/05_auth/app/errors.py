"""Error answers of the users resource, in FastAPI's own `{"detail": ...}` shape."""

from typing import cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.repository import EmailTakenError, InvalidCursorError
from app.security import PasswordHashingBusyError


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    error = cast(RequestValidationError, exc)
    # FastAPI's own handler quotes each bad value back ("input": ...): for a
    # password too short, the password itself. Only where, what and why.
    errors = [
        {"loc": list(item["loc"]), "msg": item["msg"], "type": item["type"]}
        for item in error.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)


async def _email_taken(_request: Request, _exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": "An account with this email address already exists."}, status_code=409
    )


async def _invalid_cursor(_request: Request, _exc: Exception) -> JSONResponse:
    errors = [
        {
            "loc": ["query", "cursor"],
            "msg": "This cursor was not issued by this service.",
            "type": "invalid_cursor",
        }
    ]
    return JSONResponse({"detail": errors}, status_code=422)


async def _password_hashing_busy(_request: Request, _exc: Exception) -> JSONResponse:
    # Refused at once rather than queued: a client retrying in a second is
    # served sooner than one waiting behind a queue of hashes.
    return JSONResponse(
        {"detail": "Too many password checks are in progress: try again in a second."},
        status_code=503,
        headers={"Retry-After": "1"},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Answer the expected errors: bad input, a taken email, a foreign cursor, hashing refused."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(EmailTakenError, _email_taken)
    app.add_exception_handler(InvalidCursorError, _invalid_cursor)
    app.add_exception_handler(PasswordHashingBusyError, _password_hashing_busy)
