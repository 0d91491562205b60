"""Request dependencies, as Annotated aliases the routes declare."""

import math
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Response
from fastapi.security import OAuth2PasswordBearer
from fastapi.security.base import SecurityBase
from sqlalchemy.ext.asyncio import AsyncSession

from app import session_markers
from app.cache import user_key
from app.config import Settings
from app.limit_policy import api_limit_key, apply_api_decision, enforce_api_limit
from app.ratelimit import fail_open_decision
from app.repository import LiveSession, SessionRepository, UserRecord
from app.security import PasswordHasher, decode_access_token
from app.state import request_state

# tokenUrl makes Swagger UI's Authorize button log in through POST /auth/token.
# auto_error=False: a missing header becomes our own 401 problem, not FastAPI's.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


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
    """The app's password hasher (its concurrency limit is shared by every request)."""
    return request_state(request)["password_hasher"]


SettingsDep = Annotated[Settings, Depends(get_request_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
PasswordHasherDep = Annotated[PasswordHasher, Depends(get_password_hasher)]


async def check_hashing_capacity(hasher: PasswordHasherDep) -> None:
    """Answer 503 at once when the password hashing queue is full (see PasswordHasher)."""
    hasher.check_capacity()


def invalid_token() -> HTTPException:
    """The one 401 for every bad token: no detail tells an attacker what was wrong with it."""
    return HTTPException(
        401,
        "The bearer token is invalid, expired or revoked.",
        # RFC 6750: a token was presented and refused.
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


@dataclass(frozen=True, slots=True)
class AuthenticatedUser:
    """Who is calling, with all that authorisation needs; no query when Redis vouched for them.

    Only live sessions of active users get this far, so "is active" is implied.
    """

    session_id: uuid.UUID
    user_id: uuid.UUID
    is_admin: bool
    # The public user's JSON the fast path read from the cache (None: not cached).
    cached_json: bytes | None = None
    # The full row when the session was checked in PostgreSQL (None: a live marker answered).
    record: UserRecord | None = None


async def authenticate(request: Request, response: Response) -> AuthenticatedUser:
    """Authenticate the bearer token and count the request: the one place auth is decided.

    The signature and claims are checked first (no I/O). Then ONE Redis call
    counts the request against the general limit and reads the session's marker
    and the cached user. A live marker settles it; otherwise (no marker, or no
    Redis) one PostgreSQL query checks that the session is live and its user
    active, and writes the marker. Revocations overwrite markers right after
    their commit, so they take effect on the very next request.
    """
    # Read directly, not as SettingsDep or the OAuth2 scheme's own dependency:
    # each sub-dependency costs every authenticated request microseconds of
    # FastAPI's dependency solving (docs/performance.md).
    token = _bearer_token(request)
    state = request_state(request)
    settings = state["settings"]
    claims = decode_access_token(settings, token) if token else None
    if claims is None:
        # A refused token counts against the general limit too: guessing is not free.
        await enforce_api_limit(request, response)
        if not token:
            raise HTTPException(401, "Authentication is required: send a bearer token.")
        raise invalid_token()
    redis, cache = state["redis"], state["user_cache"]
    user_id, limit = str(claims.user_id), settings.rate_limit
    marker_key = session_markers.session_key(claims.session_id)
    checked = await session_markers.check_request(
        redis,
        limit_key=api_limit_key(request, settings),
        limit=limit.count,
        period_seconds=limit.period_seconds,
        session_key=marker_key,
        user_id=claims.user_id,
        # With the cache disabled nothing writes this key, and the answer is ignored.
        user_key=cache.key(user_id) if cache else user_key(user_id),
    )
    metrics = state["metrics"]
    if checked.rate_limit is None:
        # Redis unavailable: the general limit fails open, as enforce_api_limit's does.
        metrics.redis_errors.labels("fastpath").inc()
    decision = checked.rate_limit or fail_open_decision(limit.count, limit.period_seconds)
    apply_api_decision(request, response, decision)  # raises the 429
    cached_json = checked.cached_user if cache else None
    if checked.session_live:
        metrics.auth_checks.labels("redis").inc()
        return AuthenticatedUser(claims.session_id, claims.user_id, checked.is_admin, cached_json)
    metrics.auth_checks.labels("database").inc()
    # Opened here rather than declared as SessionDep: a request settled by the
    # marker never builds a database session, and this one is closed (its
    # connection back in the pool) before the route runs.
    async with state["sessionmaker"]() as session:
        live = await SessionRepository(session).load_authenticated(
            claims.session_id, claims.user_id
        )
    if live is None:
        raise invalid_token()
    ttl = _marker_ttl(settings, live)
    # Redis just failed: do not spend a second timeout on writing the marker.
    if checked.redis_available and ttl >= 1:
        await session_markers.mark_session_live(
            redis, marker_key, user_id=claims.user_id, is_admin=live.user.is_admin, ttl_seconds=ttl
        )
    return AuthenticatedUser(
        claims.session_id, claims.user_id, live.user.is_admin, cached_json, live.user
    )


def _marker_ttl(settings: Settings, live: LiveSession) -> int:
    # Trade-off: each session costs one query per TTL instead of one per request,
    # and a revocation whose marker could not be overwritten (Redis unreachable
    # from the revoking replica) is ignored by the other replicas for up to the
    # TTL. Never past the session's own expiry, which only PostgreSQL checks.
    until_expiry = (live.expires_at - datetime.now(UTC)).total_seconds()
    return min(settings.session_marker_ttl_seconds, math.floor(until_expiry))


def _bearer_token(request: Request) -> str | None:
    # What OAuth2PasswordBearer(auto_error=False) reads, without its dependency.
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if token and scheme.lower() == "bearer" else None


class BearerTokenCheck(SecurityBase):
    """`authenticate` as one dependency that OpenAPI still shows as the OAuth2 password flow.

    FastAPI documents a route's security from the dependencies that are
    SecurityBase instances: this one carries oauth2_scheme's description, so
    Swagger UI's Authorize button works, and no second dependency is solved.
    """

    def __init__(self, scheme: OAuth2PasswordBearer) -> None:
        self.model = scheme.model
        self.scheme_name = scheme.scheme_name

    async def __call__(self, request: Request, response: Response) -> AuthenticatedUser:
        """Authenticate the request (see authenticate)."""
        return await authenticate(request, response)


get_authenticated = BearerTokenCheck(oauth2_scheme)
CurrentUser = Annotated[AuthenticatedUser, Depends(get_authenticated)]


async def get_admin_user(caller: CurrentUser) -> AuthenticatedUser:
    """The authenticated user, who must be an admin.

    A role check on a whole route answers 403: that the route exists is no
    secret. Checks on one object (someone else's user id) answer 404 instead,
    so they do not confirm that the object exists.
    """
    if not caller.is_admin:
        raise HTTPException(403, "Only administrators may do this.")
    return caller
