"""User accounts: sign-up, self-service and administration."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status

from app.deps import CurrentUser, SessionDep, get_admin_user
from app.repository import UserRepository
from app.schemas import UserAdminUpdate, UserCreate, UserPage, UserPublic, UserUpdate
from app.security import hash_password, verify_password

router = APIRouter(prefix="/api/v1/users", tags=["users"])

_NOT_FOUND = "No user with this id exists."


# --8<-- [start:create]
@router.post(
    "", status_code=status.HTTP_201_CREATED, responses={409: {"description": "Email taken."}}
)
async def create_user(body: UserCreate, session: SessionDep) -> UserPublic:
    """Sign up: create a user account."""
    password_hash = await hash_password(body.password)
    user = await UserRepository(session).create(
        email=body.email, password_hash=password_hash, full_name=body.full_name
    )
    # Commit before answering: a commit failing after the 201 would be a lost write.
    await session.commit()
    return UserPublic.model_validate(user)


# --8<-- [end:create]
@router.get("/me")
async def read_me(user: CurrentUser) -> UserPublic:
    """Read the authenticated user."""
    return UserPublic.model_validate(user)


@router.patch("/me")
async def update_me(body: UserUpdate, user: CurrentUser, session: SessionDep) -> UserPublic:
    """Change the authenticated user's name or password."""
    changes: dict[str, object] = {}
    if "full_name" in body.model_fields_set:
        changes["full_name"] = body.full_name
    if body.password is not None:
        # A stolen access token alone must not be enough to take over the account.
        if body.current_password is None or not await verify_password(
            body.current_password, user.password_hash
        ):
            raise HTTPException(403, "The current password is not correct.")
        changes["password_hash"] = await hash_password(body.password)
    updated = await UserRepository(session).update(user.id, changes)
    if updated is None:
        raise HTTPException(404, _NOT_FOUND)
    await session.commit()
    return UserPublic.model_validate(updated)


@router.get("/{user_id}")
async def read_user(user_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> UserPublic:
    """Read one user: yourself, or anyone if you are an admin."""
    # 404 rather than 403 for someone else's id: do not confirm that it exists.
    if user_id != user.id and not user.is_admin:
        raise HTTPException(404, _NOT_FOUND)
    found = await UserRepository(session).get(user_id)
    if found is None:
        raise HTTPException(404, _NOT_FOUND)
    return UserPublic.model_validate(found)


@router.get("", dependencies=[Depends(get_admin_user)])
async def list_users(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> UserPage:
    """List users, oldest first, one page at a time (admins only)."""
    users, next_cursor = await UserRepository(session).list_page(limit=limit, cursor=cursor)
    return UserPage(items=[UserPublic.model_validate(u) for u in users], next_cursor=next_cursor)


@router.patch("/{user_id}", dependencies=[Depends(get_admin_user)])
async def update_user(user_id: uuid.UUID, body: UserAdminUpdate, session: SessionDep) -> UserPublic:
    """Change a user's name, active flag or admin flag (admins only)."""
    updated = await UserRepository(session).update(user_id, body.model_dump(exclude_unset=True))
    if updated is None:
        raise HTTPException(404, _NOT_FOUND)
    await session.commit()
    return UserPublic.model_validate(updated)


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_user(user_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> Response:
    """Delete a user: yourself, or anyone if you are an admin."""
    if user_id != user.id and not user.is_admin:
        raise HTTPException(404, _NOT_FOUND)
    if not await UserRepository(session).delete(user_id):
        raise HTTPException(404, _NOT_FOUND)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
