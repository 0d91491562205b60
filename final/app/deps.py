"""Request dependencies, as Annotated aliases the routes declare."""

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.repository import AuthenticatedUser, SessionRepository, UserRecord
from app.security import PasswordHasher, decode_access_token

# tokenUrl makes Swagger UI's Authorize button log in through POST /auth/token.
# auto_error=False: a missing header becomes our own 401 problem, not FastAPI's.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_request_settings(request: Request) -> Settings:
    """The settings the app was built with (from the lifespan state)."""
    return cast(Settings, request.state.settings)


# --8<-- [start:session]
async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One database session per request, closed after the response.

    Closing is all this does: routes commit before they return, because this
    teardown runs after the response is sent, when a failed commit could no
    longer change what the client was told.
    """
    sessionmaker = cast(async_sessionmaker[AsyncSession], request.state.sessionmaker)
    async with sessionmaker() as session:
        yield session


# --8<-- [end:session]


def get_password_hasher(request: Request) -> PasswordHasher:
    """The app's password hasher (its concurrency limit is shared by every request)."""
    return cast(PasswordHasher, request.app.state.password_hasher)


SettingsDep = Annotated[Settings, Depends(get_request_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
PasswordHasherDep = Annotated[PasswordHasher, Depends(get_password_hasher)]


def invalid_token() -> HTTPException:
    """The one 401 for every bad token: no detail tells an attacker what was wrong with it."""
    return HTTPException(
        401,
        "The bearer token is invalid, expired or revoked.",
        # RFC 6750: a token was presented and refused.
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


# --8<-- [start:authenticate]
async def get_authenticated(
    token: Annotated[str | None, Depends(oauth2_scheme)],
    settings: SettingsDep,
    session: SessionDep,
) -> AuthenticatedUser:
    """Authenticate the bearer token: the one place auth is decided.

    The signature and claims are checked first (no I/O); then one query checks
    that the token's session is live and its user active, so logout, password
    changes, deactivation and deletion take effect on the very next request.
    """
    if not token:
        raise HTTPException(401, "Authentication is required: send a bearer token.")
    claims = decode_access_token(settings, token)
    if claims is None:
        raise invalid_token()
    caller = await SessionRepository(session).load_authenticated(claims.session_id, claims.user_id)
    if caller is None:
        raise invalid_token()
    return caller


# --8<-- [end:authenticate]
Authenticated = Annotated[AuthenticatedUser, Depends(get_authenticated)]


async def get_current_user(caller: Authenticated) -> UserRecord:
    """The authenticated user (routes that need the session too declare Authenticated)."""
    return caller.user


CurrentUser = Annotated[UserRecord, Depends(get_current_user)]


async def get_admin_user(user: CurrentUser) -> UserRecord:
    """The authenticated user, who must be an admin.

    A role check on a whole route answers 403: that the route exists is no
    secret. Checks on one object (someone else's user id) answer 404 instead,
    so they do not confirm that the object exists.
    """
    if not user.is_admin:
        raise HTTPException(403, "Only administrators may do this.")
    return user


AdminUser = Annotated[UserRecord, Depends(get_admin_user)]
