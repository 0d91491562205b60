"""User accounts: sign-up, self-service and administration."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status

from app.deps import CurrentUser, PasswordHasherDep, SessionDep, get_admin_user
from app.limit_policy import enforce_api_limit, enforce_login_limit
from app.repository import SessionRepository, UserRepository
from app.schemas import (
    STORABLE,
    UserAdminUpdate,
    UserCreate,
    UserPage,
    UserPublic,
    UserUpdate,
)
from app.session_markers import forget_session_markers
from app.user_reads import invalidate_user, json_response, read_user_json

router = APIRouter(prefix="/api/v1/users", tags=["users"])

_NOT_FOUND = "No user with this id exists."
# Error answers particular to these routes, for the OpenAPI schema.
_Responses = dict[int | str, dict[str, Any]]
_NO_SUCH_USER: _Responses = {404: {"description": "No such user, or not one you may see."}}
_DELETED_SINCE_TOKEN_CHECK: _Responses = {404: {"description": "The account was just deleted."}}
_LAST_ADMIN: _Responses = {409: {"description": "This is the last active administrator."}}


# --8<-- [start:last_admin]
async def _refuse_removing_last_admin(users: UserRepository, target_id: uuid.UUID) -> None:
    """Raise 409 if the target is the only active admin: nobody could administer the service after.

    Called before every change that could remove an admin, whoever makes it: two
    admins removing each other at once each see the other still in place unless
    the active admins' rows are locked. A target that is not an active admin
    passes (the lock still costs one short query).
    """
    if await users.lock_active_admin_ids() == [target_id]:
        raise HTTPException(409, "This is the last active administrator; make another one first.")


# --8<-- [end:last_admin]


# --8<-- [start:create]
@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "An account with this email address already exists."}},
    # Anonymous: no token check counts the request, so the general limit does.
    dependencies=[Depends(enforce_api_limit)],
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


# --8<-- [start:read_me]
@router.get("/me", response_model=UserPublic, responses=_DELETED_SINCE_TOKEN_CHECK)
async def read_me(caller: CurrentUser, request: Request, response: Response) -> Response:
    """Read the authenticated user."""
    # Usually the token check's one Redis call already read the cached JSON:
    # then this answer costs no I/O at all, and no database session is built.
    body = await read_user_json(request, caller.user_id, prefetched=caller.cached_json)
    if body is None:  # deleted since the token check
        raise HTTPException(404, _NOT_FOUND)
    return json_response(body, response)


# --8<-- [end:read_me]


def _wrong_current_password() -> HTTPException:
    return HTTPException(403, "The current password is not correct.")


# --8<-- [start:update_me]
@router.patch(
    "/me",
    responses={
        **_DELETED_SINCE_TOKEN_CHECK,
        403: {"description": "current_password is not the account's password."},
        429: {"description": "Too many password checks for this account or client."},
    },
)
async def update_me(
    body: UserUpdate,
    caller: CurrentUser,
    session: SessionDep,
    hasher: PasswordHasherDep,
    request: Request,
) -> UserPublic:
    """Change the authenticated user's name or password (which ends their other sessions)."""
    users = UserRepository(session)
    # The password hash is not in what the token check returns when Redis vouched
    # for the session: a write may cost this one more query, a read never does.
    user = caller.record or await users.get(caller.user_id)
    if user is None:
        raise HTTPException(404, _NOT_FOUND)
    await session.rollback()  # no pooled connection held while passwords are hashed (see login)
    changes: dict[str, object] = {}
    if "full_name" in body.model_fields_set:
        changes["full_name"] = body.full_name
    verified_hash: str | None = None  # the hash current_password matched, if it was checked
    if body.password is not None:
        # Checking current_password is a login attempt by another route: it counts
        # against the same limit (this account, this client), before any hashing,
        # or a stolen access token could guess the password at hashing speed.
        await enforce_login_limit(request, user.email)
        # A stolen access token alone must not be enough to take over the account.
        if body.current_password is None or not await hasher.verify(
            body.current_password, user.password_hash
        ):
            raise _wrong_current_password()
        verified_hash = user.password_hash
        changes["password_hash"] = await hasher.hash(body.password)
    # Only over the hash just verified: of two racing changes, the one that
    # verified a hash the other has replaced matches nothing, and is refused.
    updated = await users.update(user.id, changes, if_password_hash=verified_hash)
    if updated is None:
        await session.rollback()
        if verified_hash is not None:
            raise _wrong_current_password()
        raise HTTPException(404, _NOT_FOUND)
    ended_sessions: list[uuid.UUID] = []
    if verified_hash is not None:
        # Whoever else holds a session (perhaps the reason for the change) is
        # logged out; the device making the change stays logged in. After the
        # UPDATE, not before: it waited for any login holding the row, so that
        # login's session is committed by now and ends here with the others.
        ended_sessions = await SessionRepository(session).revoke_all(
            user.id, keep=caller.session_id
        )
    await session.commit()
    await invalidate_user(request, user.id)
    await forget_session_markers(request, ended_sessions)
    return UserPublic.model_validate(updated)


# --8<-- [end:update_me]


# --8<-- [start:read_user]
@router.get("/{user_id}", response_model=UserPublic, responses=_NO_SUCH_USER)
async def read_user(
    user_id: uuid.UUID,
    caller: CurrentUser,
    request: Request,
    response: Response,
) -> Response:
    """Read one user: yourself, or anyone if you are an admin."""
    # 404 rather than 403 for someone else's id: do not confirm that it exists.
    if user_id != caller.user_id and not caller.is_admin:
        raise HTTPException(404, _NOT_FOUND)
    body = await read_user_json(request, user_id)
    if body is None:
        raise HTTPException(404, _NOT_FOUND)
    # The cached bytes go out as they are: no parsing, no validation, no re-serialising.
    return json_response(body, response)


# --8<-- [end:read_user]


@router.get("", dependencies=[Depends(get_admin_user)])
async def list_users(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200), STORABLE] = None,
) -> UserPage:
    """List users, oldest first, one page at a time (admins only)."""
    users, next_cursor = await UserRepository(session).list_page(limit=limit, cursor=cursor)
    return UserPage(items=[UserPublic.model_validate(u) for u in users], next_cursor=next_cursor)


@router.patch(
    "/{user_id}",
    dependencies=[Depends(get_admin_user)],
    responses={**_NO_SUCH_USER, **_LAST_ADMIN},
)
async def update_user(
    user_id: uuid.UUID,
    body: UserAdminUpdate,
    session: SessionDep,
    request: Request,
) -> UserPublic:
    """Change a user's name, active flag or admin flag (admins only)."""
    users, sessions = UserRepository(session), SessionRepository(session)
    # Whoever the target is, yourself or another admin.
    if body.is_admin is False or body.is_active is False:
        await _refuse_removing_last_admin(users, user_id)
    updated = await users.update(user_id, body.model_dump(exclude_unset=True))
    if updated is None:
        raise HTTPException(404, _NOT_FOUND)
    stale_markers: list[uuid.UUID] = []
    if body.is_active is False:
        # Deactivation also ends every session: no token of theirs works after the commit.
        stale_markers = await sessions.revoke_all(user_id)
    elif body.is_admin is not None:
        # The sessions stay, but their markers record the old role: forget them,
        # so the next request reads the new one from PostgreSQL.
        stale_markers = await sessions.live_ids(user_id)
    await session.commit()
    await invalidate_user(request, user_id)
    await forget_session_markers(request, stale_markers)
    return UserPublic.model_validate(updated)


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_NO_SUCH_USER, **_LAST_ADMIN},
)
async def delete_user(
    user_id: uuid.UUID, caller: CurrentUser, session: SessionDep, request: Request
) -> Response:
    """Delete a user: yourself, or anyone if you are an admin."""
    if user_id != caller.user_id and not caller.is_admin:
        raise HTTPException(404, _NOT_FOUND)
    users = UserRepository(session)
    await _refuse_removing_last_admin(users, user_id)
    # ON DELETE CASCADE removes the user's sessions, so their tokens die with them;
    # their ids are read first, to forget their markers after the commit. The
    # row lock first: a login holding the row commits its session before the
    # read, so that session is forgotten too, not admitted by a marker.
    if not await users.lock(user_id):
        raise HTTPException(404, _NOT_FOUND)
    ended_sessions = await SessionRepository(session).live_ids(user_id)
    await users.delete(user_id)
    await session.commit()
    await invalidate_user(request, user_id)
    await forget_session_markers(request, ended_sessions)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
