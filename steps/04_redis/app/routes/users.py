"""User accounts: sign-up, read (through the cache), list, update and delete, open to all."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status

from app.deps import PasswordHasherDep, SessionDep
from app.limit_policy import enforce_api_limit
from app.repository import UserRepository
from app.schemas import STORABLE, UserCreate, UserPage, UserPublic, UserUpdate
from app.user_reads import invalidate_user, json_response, read_user_json

# Every route here counts against its client's general limit (RATE_LIMIT).
router = APIRouter(
    prefix="/api/v1/users",
    tags=["users"],
    dependencies=[Depends(enforce_api_limit)],
    responses={429: {"description": "Too many requests from this client: see Retry-After."}},
)

_NOT_FOUND = "No user with this id exists."


# --8<-- [start:create]
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


# --8<-- [end:create]


# --8<-- [start:read_user]
@router.get("/{user_id}", response_model=UserPublic)
async def read_user(user_id: uuid.UUID, request: Request, response: Response) -> Response:
    """Read one user."""
    body = await read_user_json(request, user_id)
    if body is None:
        raise HTTPException(404, _NOT_FOUND)
    # The cached bytes go out as they are: no parsing, no validation, no re-serialising.
    return json_response(body, response)


# --8<-- [end:read_user]


# --8<-- [start:list]
@router.get("")
async def list_users(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200), STORABLE] = None,
) -> UserPage:
    """List users, oldest first, one page at a time."""
    users, next_cursor = await UserRepository(session).list_page(limit=limit, cursor=cursor)
    return UserPage(items=[UserPublic.model_validate(u) for u in users], next_cursor=next_cursor)


# --8<-- [end:list]


@router.patch("/{user_id}")
async def update_user(
    user_id: uuid.UUID, body: UserUpdate, session: SessionDep, request: Request
) -> UserPublic:
    """Change a user's name."""
    updated = await UserRepository(session).update(user_id, body.model_dump(exclude_unset=True))
    if updated is None:
        raise HTTPException(404, _NOT_FOUND)
    await session.commit()
    # After the commit, never before: a read in between would cache the old row again.
    await invalidate_user(request, user_id)
    return UserPublic.model_validate(updated)


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_user(user_id: uuid.UUID, session: SessionDep, request: Request) -> Response:
    """Delete a user."""
    if not await UserRepository(session).delete(user_id):
        raise HTTPException(404, _NOT_FOUND)
    await session.commit()
    await invalidate_user(request, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
