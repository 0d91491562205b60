"""User accounts: sign-up, self-service and administration."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status

from app.caching import invalidate_user, json_response, read_user_json
from app.deps import (
    AdminUser,
    Authenticated,
    CurrentUser,
    PasswordHasherDep,
    SessionDep,
    get_admin_user,
)
from app.repository import SessionRepository, UserRecord, UserRepository
from app.schemas import UserAdminUpdate, UserCreate, UserPage, UserPublic, UserUpdate

router = APIRouter(prefix="/api/v1/users", tags=["users"])

_NOT_FOUND = "No user with this id exists."


# --8<-- [start:last_admin]
async def _refuse_removing_last_admin(users: UserRepository, target: UserRecord) -> None:
    """Raise 409 if target is the only active admin: nobody could administer the service after."""
    if not (target.is_admin and target.is_active):
        return
    if await users.lock_active_admin_ids() == [target.id]:
        raise HTTPException(409, "This is the last active administrator; make another one first.")


# --8<-- [end:last_admin]


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
@router.get("/me")
async def read_me(user: CurrentUser) -> UserPublic:
    """Read the authenticated user."""
    return UserPublic.model_validate(user)


@router.patch("/me")
async def update_me(
    body: UserUpdate,
    caller: Authenticated,
    session: SessionDep,
    hasher: PasswordHasherDep,
    request: Request,
) -> UserPublic:
    """Change the authenticated user's name or password (which ends their other sessions)."""
    user = caller.user
    changes: dict[str, object] = {}
    if "full_name" in body.model_fields_set:
        changes["full_name"] = body.full_name
    if body.password is not None:
        # A stolen access token alone must not be enough to take over the account.
        if body.current_password is None or not await hasher.verify(
            body.current_password, user.password_hash
        ):
            raise HTTPException(403, "The current password is not correct.")
        changes["password_hash"] = await hasher.hash(body.password)
        # Whoever else holds a session (perhaps the reason for the change) is
        # logged out; the device making the change stays logged in.
        await SessionRepository(session).revoke_all(user.id, keep=caller.session_id)
    updated = await UserRepository(session).update(user.id, changes)
    if updated is None:
        raise HTTPException(404, _NOT_FOUND)
    await session.commit()
    await invalidate_user(request, user.id)
    return UserPublic.model_validate(updated)


# --8<-- [start:read_user]
@router.get("/{user_id}", response_model=UserPublic)
async def read_user(
    user_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    request: Request,
    response: Response,
) -> Response:
    """Read one user: yourself, or anyone if you are an admin."""
    # 404 rather than 403 for someone else's id: do not confirm that it exists.
    if user_id != user.id and not user.is_admin:
        raise HTTPException(404, _NOT_FOUND)
    body = await read_user_json(request, session, user_id)
    if body is None:
        raise HTTPException(404, _NOT_FOUND)
    # The cached bytes go out as they are: no parsing, no validation, no re-serialising.
    return json_response(body, response)


# --8<-- [end:read_user]


@router.get("", dependencies=[Depends(get_admin_user)])
async def list_users(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> UserPage:
    """List users, oldest first, one page at a time (admins only)."""
    users, next_cursor = await UserRepository(session).list_page(limit=limit, cursor=cursor)
    return UserPage(items=[UserPublic.model_validate(u) for u in users], next_cursor=next_cursor)


@router.patch("/{user_id}")
async def update_user(
    user_id: uuid.UUID,
    body: UserAdminUpdate,
    admin: AdminUser,
    session: SessionDep,
    request: Request,
) -> UserPublic:
    """Change a user's name, active flag or admin flag (admins only)."""
    users = UserRepository(session)
    if user_id == admin.id and (body.is_admin is False or body.is_active is False):
        await _refuse_removing_last_admin(users, admin)
    updated = await users.update(user_id, body.model_dump(exclude_unset=True))
    if updated is None:
        raise HTTPException(404, _NOT_FOUND)
    if body.is_active is False:
        # Deactivation also ends every session: no token of theirs works after the commit.
        await SessionRepository(session).revoke_all(user_id)
    await session.commit()
    await invalidate_user(request, user_id)
    return UserPublic.model_validate(updated)


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_user(
    user_id: uuid.UUID, user: CurrentUser, session: SessionDep, request: Request
) -> Response:
    """Delete a user: yourself, or anyone if you are an admin."""
    if user_id != user.id and not user.is_admin:
        raise HTTPException(404, _NOT_FOUND)
    users = UserRepository(session)
    if user_id == user.id:
        await _refuse_removing_last_admin(users, user)
    # ON DELETE CASCADE removes the user's sessions, so their tokens die with them.
    if not await users.delete(user_id):
        raise HTTPException(404, _NOT_FOUND)
    await session.commit()
    await invalidate_user(request, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
