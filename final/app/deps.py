"""Request dependencies, as Annotated aliases the routes declare."""

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.repository import UserRecord

# auto_error=False: a missing header becomes our own 401 problem, not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False)


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


async def get_current_user(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> UserRecord:
    """Authenticate the bearer token: the one place auth is decided.

    The auth layer fills this in (token decoding, session check, loading the
    user). Until it exists, no credentials can be valid, so every request is a 401.
    """
    if credentials is None:
        raise HTTPException(401, "Authentication is required: send a bearer token.")
    raise HTTPException(401, "The bearer token is not valid.")


CurrentUser = Annotated[UserRecord, Depends(get_current_user)]


async def get_admin_user(user: CurrentUser) -> UserRecord:
    """The authenticated user, who must be an admin."""
    if not user.is_admin:
        raise HTTPException(403, "Only administrators may do this.")
    return user


SettingsDep = Annotated[Settings, Depends(get_request_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
AdminUser = Annotated[UserRecord, Depends(get_admin_user)]
