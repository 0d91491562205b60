"""User accounts: sign-up, read, list, update and delete, open to all: nothing authenticates yet."""

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status

from app.deps import PasswordHasherDep, SessionDep
from app.repository import UserRepository
from app.schemas import STORABLE, UserCreate, UserPage, UserPublic, UserUpdate

router = APIRouter(prefix="/api/v1/users", tags=["users"])

_NOT_FOUND = "No user with this id exists."


@router.post(
    "", status_code=status.HTTP_201_CREATED, responses={409: {"description": "Email taken."}}
)
async def create_user(
    body: UserCreate, session: SessionDep, hasher: PasswordHasherDep
) -> UserPublic:
    """Sign up: create a user account."""
    password_hash = await hasher.hash(body.password)
    user = await UserRepository(session).create(
        email=body.email, password_hash=password_hash, full_name=body.full_name
    )
    # Commit before answering: a commit failing after the 201 would be a lost write.
    await session.commit()
    return UserPublic.model_validate(user)


@router.get("/{user_id}")
async def read_user(user_id: uuid.UUID, session: SessionDep) -> UserPublic:
    """Read one user."""
    user = await UserRepository(session).get(user_id)
    if user is None:
        raise HTTPException(404, _NOT_FOUND)
    return UserPublic.model_validate(user)


@router.get("")
async def list_users(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200), STORABLE] = None,
) -> UserPage:
    """List users, oldest first, one page at a time."""
    users, next_cursor = await UserRepository(session).list_page(limit=limit, cursor=cursor)
    return UserPage(items=[UserPublic.model_validate(u) for u in users], next_cursor=next_cursor)


@router.patch("/{user_id}")
async def update_user(user_id: uuid.UUID, body: UserUpdate, session: SessionDep) -> UserPublic:
    """Change a user's name."""
    updated = await UserRepository(session).update(user_id, body.model_dump(exclude_unset=True))
    if updated is None:
        raise HTTPException(404, _NOT_FOUND)
    await session.commit()
    return UserPublic.model_validate(updated)


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_user(user_id: uuid.UUID, session: SessionDep) -> Response:
    """Delete a user."""
    if not await UserRepository(session).delete(user_id):
        raise HTTPException(404, _NOT_FOUND)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
