"""Authentication: log in, rotate refresh tokens, log out, and manage one's sessions."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response, status

from app.config import Settings
from app.deps import (
    CurrentUser,
    PasswordHasherDep,
    SessionDep,
    SettingsDep,
    check_hashing_capacity,
    invalid_token,
)
from app.limit_policy import enforce_api_limit, enforce_login_limit
from app.repository import SessionRepository, UserRepository
from app.schemas import LogoutRequest, RefreshRequest, SessionPublic, StorableStr, Token
from app.security import (
    RefreshToken,
    create_access_token,
    hash_refresh_secret,
    new_refresh_secret,
    parse_refresh_token,
)
from app.session_markers import forget_session_markers
from app.user_reads import invalidate_user

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

# The session list shows these; bounded so a client cannot store a megabyte per login.
_USER_AGENT_MAX = 200
_IP_MAX = 64
_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"description": "Bad credentials or token."}}
# Anonymous routes: no token check counts the request, so the general limit does.
_API_LIMIT = [Depends(enforce_api_limit)]


def _bad_credentials() -> HTTPException:
    # One answer for an unknown email, a wrong password and a deactivated
    # account: telling them apart would tell an attacker which emails exist.
    return HTTPException(401, "The email or password is not correct.")


def _token_pair(settings: Settings, user_id: uuid.UUID, refresh_token: RefreshToken) -> Token:
    return Token(
        access_token=create_access_token(settings, user_id, refresh_token.session_id),
        refresh_token=str(refresh_token),
        expires_in=settings.access_token_ttl_seconds,
    )


@router.post(
    "/token",
    responses={
        **_UNAUTHORIZED,
        429: {"description": "Too many attempts for this account or client."},
        503: {"description": "Too many password checks at once (Retry-After: 1), or no database."},
    },
    # The capacity check first: a login that will be refused for want of
    # hashing capacity costs no Redis or database call.
    dependencies=[Depends(check_hashing_capacity), *_API_LIMIT],
)
async def login(
    # OAuth2's password flow, the fields of FastAPI's OAuth2PasswordRequestForm.
    # Not that class itself: FastAPI runs a class dependency in its thread pool,
    # and a burst of logins then had dozens of threads taking the GIL from the
    # event loop, stalling every other request (docs/performance.md).
    username: Annotated[StorableStr, Form()],
    password: Annotated[StorableStr, Form()],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    hasher: PasswordHasherDep,
    # Checked, not used: the password grant is the only one, and may be left out.
    grant_type: Annotated[str | None, Form(pattern="^password$")] = None,  # noqa: ARG001
) -> Token:
    """Log in with email (as `username`) and password; start a session."""
    await enforce_login_limit(request, username)
    users = UserRepository(session)
    user = await users.get_by_email(username)
    # End the read before hashing: a pooled connection held through ~100 ms of
    # Argon2 per login lets a burst of logins take every connection, and then
    # every other request waits for the pool instead of being answered.
    await session.rollback()
    if user is None:
        await hasher.verify_dummy(password)
        raise _bad_credentials()
    valid, upgraded_hash = await hasher.verify_and_update(password, user.password_hash)
    if not valid or not user.is_active:
        raise _bad_credentials()
    # The password may have changed, or the account been deactivated, while it
    # was hashed. The session starts only if the hash just verified is still the
    # stored one, under a row lock held to the commit: a racing password change
    # either comes first (and this login gets the 401 of a wrong password) or
    # waits for this commit, and then ends this session with the others.
    if upgraded_hash is None:
        unchanged = await users.lock_if_password_unchanged(user.id, user.password_hash)
    else:
        # The hash used older cost parameters: the plain password is only ever
        # here, at login, so this is the moment to upgrade it.
        upgraded = {"password_hash": upgraded_hash}
        unchanged = (
            await users.update(user.id, upgraded, if_password_hash=user.password_hash) is not None
        )
    if not unchanged:
        await session.rollback()
        raise _bad_credentials()
    secret = new_refresh_secret()
    client = request.client
    session_id = await SessionRepository(session).create(
        user_id=user.id,
        refresh_token_hash=hash_refresh_secret(secret),
        ttl_seconds=settings.refresh_token_ttl_seconds,
        user_agent=(request.headers.get("user-agent") or "")[:_USER_AGENT_MAX] or None,
        ip=client.host[:_IP_MAX] if client else None,
    )
    await session.commit()
    if upgraded_hash is not None:
        # The rehash changed updated_at, which the cached public user shows.
        await invalidate_user(request, user.id)
    return _token_pair(settings, user.id, RefreshToken(session_id, secret))


@router.post("/refresh", responses=_UNAUTHORIZED, dependencies=_API_LIMIT)
async def refresh(
    body: RefreshRequest, session: SessionDep, settings: SettingsDep, request: Request
) -> Token:
    """Trade a refresh token for a new pair; the one presented is spent."""
    presented = parse_refresh_token(body.refresh_token)
    if presented is None:
        raise invalid_token()
    sessions = SessionRepository(session)
    presented_hash, secret = hash_refresh_secret(presented.secret), new_refresh_secret()
    user_id = await sessions.rotate(
        presented.session_id, presented_hash, hash_refresh_secret(secret)
    )
    if user_id is None:
        # Not the current secret. If it is one this session has spent, a spent
        # token came back: either its thief or its owner is replaying it, and
        # we cannot tell which, so the whole family dies, newer tokens
        # included. Any other secret proves nothing (the session id is in every
        # access token), so it changes nothing. (A revoked, expired or unknown
        # session matches nothing here.)
        replayed = await sessions.revoke_on_replay(presented.session_id, presented_hash)
        await session.commit()
        if replayed:
            await forget_session_markers(request, [presented.session_id])
        raise invalid_token()
    await session.commit()
    return _token_pair(settings, user_id, RefreshToken(presented.session_id, secret))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=_UNAUTHORIZED)
async def logout(
    caller: CurrentUser, session: SessionDep, request: Request, body: LogoutRequest | None = None
) -> Response:
    """End the access token's session (and the refresh token's, if it names another of yours)."""
    sessions = SessionRepository(session)
    ended_sessions = [caller.session_id]
    await sessions.revoke(caller.session_id)
    if body is not None and body.refresh_token is not None:
        presented = parse_refresh_token(body.refresh_token)
        if (
            presented is not None
            and presented.session_id != caller.session_id
            and await sessions.revoke(presented.session_id, user_id=caller.user_id)
        ):
            ended_sessions.append(presented.session_id)
    await session.commit()
    await forget_session_markers(request, ended_sessions)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/sessions", responses=_UNAUTHORIZED)
async def list_sessions(caller: CurrentUser, session: SessionDep) -> list[SessionPublic]:
    """List the caller's live sessions, newest first."""
    live = await SessionRepository(session).list_live(caller.user_id)
    return [
        SessionPublic(
            id=item.id,
            created_at=item.created_at,
            last_used_at=item.last_used_at,
            expires_at=item.expires_at,
            user_agent=item.user_agent,
            ip=item.ip,
            current=item.id == caller.session_id,
        )
        for item in live
    ]


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_UNAUTHORIZED, 404: {"description": "No such live session of yours."}},
)
async def revoke_session(
    session_id: uuid.UUID, caller: CurrentUser, session: SessionDep, request: Request
) -> Response:
    """End one of the caller's sessions (for example a lost phone's)."""
    # Someone else's session id gets the same 404 as an unknown one.
    if not await SessionRepository(session).revoke(session_id, user_id=caller.user_id):
        raise HTTPException(404, "No live session of yours has this id.")
    await session.commit()
    await forget_session_markers(request, [session_id])
    return Response(status_code=status.HTTP_204_NO_CONTENT)
