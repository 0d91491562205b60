"""Request dependencies, as Annotated aliases the routes declare."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.security import PasswordHasher
from app.state import request_state


# Dependencies are `async def` even with nothing to await: FastAPI runs a plain
# `def` dependency in its thread pool, a thread hop per request for a dict look-up.
async def get_request_settings(request: Request) -> Settings:
    """The settings the app was built with (from the lifespan state)."""
    return request_state(request)["settings"]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One database session per request, closed after the response.

    Closing is all this does: routes commit before they return, because this
    teardown runs after the response is sent, when a failed commit could no
    longer change what the client was told.
    """
    async with request_state(request)["sessionmaker"]() as session:
        yield session


async def get_password_hasher(request: Request) -> PasswordHasher:
    """The app's password hasher."""
    return request_state(request)["password_hasher"]


SettingsDep = Annotated[Settings, Depends(get_request_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
PasswordHasherDep = Annotated[PasswordHasher, Depends(get_password_hasher)]
