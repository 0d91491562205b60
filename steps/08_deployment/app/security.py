"""Password hashing (Argon2id, bounded, off the loop), JWT access and opaque refresh tokens."""

import asyncio
import contextlib
import functools
import hashlib
import os
import secrets
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, TypeVar

import anyio
import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from app.config import Settings

T = TypeVar("T")

# --- passwords -------------------------------------------------------------------


class PasswordHashingBusyError(Exception):
    """Too many password checks are already waiting: the caller should retry shortly."""


def _lower_thread_priority() -> None:
    """Run this hashing thread (and the lane threads it starts) at a lower CPU priority.

    On Linux a thread's nice value is its own: the event loop thread then gets
    a core first whenever it has work, so a burst of sign-ups or logins does
    not add latency to every other request.
    """
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


# The threads that run the hashes, shared by every hasher in the process. Each
# PasswordHasher's CapacityLimiter decides how many run at once; this pool only
# provides lower-priority threads, so it is sized to never be the bottleneck.
_hashing_threads = ThreadPoolExecutor(
    max_workers=os.cpu_count() or 2,
    thread_name_prefix="password-hash",
    initializer=_lower_thread_priority,
)


class PasswordHasher:
    """Argon2id through pwdlib, run on worker threads, a few at a time, with a bounded queue."""

    def __init__(self, settings: Settings) -> None:
        self._current = Argon2Hasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        self._hash = PasswordHash((self._current,))
        # One Argon2id hash is ~140 ms of CPU on four lanes: two at a time
        # already fill two cores, and more in parallel would not finish sooner.
        self.limiter = anyio.CapacityLimiter(settings.hash_concurrency)
        self._max_waiting = settings.hash_queue_limit

    @cached_property
    def _dummy_hash(self) -> str:
        # Computed once, on a hashing thread, the first time an unknown email logs in.
        return self._hash.hash(secrets.token_urlsafe(16))

    def check_capacity(self) -> None:
        """Raise PasswordHashingBusyError if a hash asked for now would be refused.

        Call it before the work that leads up to a hash (a login's rate-limit
        and database look-ups): under a burst, the logins that will be refused
        anyway then cost almost nothing.
        """
        # Beyond capacity, answer at once rather than queue for seconds: a login
        # that waits longer than the client's patience is work thrown away.
        must_wait = self.limiter.available_tokens < 1
        if must_wait and self.limiter.statistics().tasks_waiting >= self._max_waiting:
            raise PasswordHashingBusyError

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        self.check_capacity()  # again: the queue may have filled since the caller checked
        async with self.limiter:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(_hashing_threads, function, *args)

    async def hash(self, password: str) -> str:
        """Hash a password."""
        return await self._run(self._hash.hash, password)

    async def verify(self, password: str, password_hash: str) -> bool:
        """Check a password against its hash."""
        return await self._run(self._hash.verify, password, password_hash)

    async def verify_and_update(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        """Check a password; also return a new hash when the stored one uses old parameters."""
        return await self._run(self._verify_and_update, password, password_hash)

    def _verify_and_update(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        valid, upgraded_hash = self._hash.verify_and_update(password, password_hash)
        if not valid and self._current.check_needs_rehash(password_hash):
            # Older parameters are usually cheaper (costs only ever go up): this
            # 401 would come sooner than an unknown email's, telling accounts with
            # old hashes apart. Pay for a check at the current parameters too.
            self._hash.verify(password, self._dummy_hash)
        return valid, upgraded_hash

    async def verify_dummy(self, password: str) -> None:
        """Spend the time of a real check, for an email that has no account.

        Unknown emails and wrong passwords then take the same path and the same
        time: the response time does not tell an attacker which emails exist
        (verify_and_update pays for this check too, against a hash with older parameters).
        """
        await self._run(lambda: self._hash.verify(password, self._dummy_hash))


# --- access tokens (JWT) ---------------------------------------------------------

ACCESS_TOKEN_TYPE = "access"  # noqa: S105 (a claim value, not a secret)
# Every claim decode_access_token relies on: a token missing one is refused.
_REQUIRED_CLAIMS = ["sub", "sid", "typ", "jti", "iat", "nbf", "exp", "iss", "aud"]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What the service reads from a valid access token."""

    user_id: uuid.UUID
    session_id: uuid.UUID


def create_access_token(settings: Settings, user_id: uuid.UUID, session_id: uuid.UUID) -> str:
    """Sign a short-lived access token bound to one session."""
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        # Binding the token to its session is what makes revocation immediate:
        # every request checks that this session is still live.
        "sid": str(session_id),
        "typ": ACCESS_TOKEN_TYPE,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(seconds=settings.access_token_ttl_seconds),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    return jwt.encode(
        claims, settings.secret_key.get_secret_value(), algorithm=settings.jwt_algorithm
    )


def decode_access_token(settings: Settings, token: str) -> AccessClaims | None:
    """Verify an access token; None for every way it can be bad (the caller answers one 401)."""
    try:
        verified = _verify_signature_and_claims(
            token,
            settings.secret_key.get_secret_value(),
            settings.jwt_algorithm,
            settings.jwt_audience,
            settings.jwt_issuer,
        )
    except (jwt.InvalidTokenError, ValueError, TypeError, AttributeError):
        # InvalidTokenError covers signature, issuer, audience, missing claims and
        # malformed tokens; the others, claims of the wrong type.
        return None
    # The signature is checked once per token (below, cached); the clock on
    # every request, so a cached token still expires on time.
    now = datetime.now(UTC).timestamp()
    leeway = settings.jwt_leeway_seconds
    if verified.expires_at <= now - leeway or verified.not_before > now + leeway:
        return None
    return verified.claims


@dataclass(frozen=True, slots=True)
class _VerifiedToken:
    """A token whose signature and fixed claims were checked; its time claims are not."""

    claims: AccessClaims
    expires_at: float
    not_before: float


@functools.lru_cache(maxsize=4096)
def _verify_signature_and_claims(
    token: str, secret: str, algorithm: str, audience: str, issuer: str
) -> _VerifiedToken:
    """Check a token's signature, issuer, audience and type; raise if any is wrong.

    Cached: a client sends the same token on every request for its lifetime,
    and verifying it costs more than the rest of a cached read's Python. Only
    tokens that pass are cached (a raise is not), so garbage cannot fill it.
    """
    claims = jwt.decode(
        token,
        secret,
        # Pinned: the token's own header never chooses the algorithm, so
        # `alg: none` and algorithm-confusion tokens are refused.
        algorithms=[algorithm],
        audience=audience,
        issuer=issuer,
        options={
            "require": _REQUIRED_CLAIMS,
            # Time is checked by the caller on every request, not once here.
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
        },
    )
    if claims["typ"] != ACCESS_TOKEN_TYPE:
        raise jwt.InvalidTokenError("Not an access token.")
    issued_at, not_before, expires_at = (float(claims[name]) for name in ("iat", "nbf", "exp"))
    return _VerifiedToken(
        claims=AccessClaims(user_id=uuid.UUID(claims["sub"]), session_id=uuid.UUID(claims["sid"])),
        expires_at=expires_at,
        # A token issued in the future is as not-yet-valid as one with a future nbf.
        not_before=max(not_before, issued_at),
    )


# --- refresh tokens (opaque) -----------------------------------------------------

_REFRESH_SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """A refresh token's two halves: the session it belongs to and its secret."""

    session_id: uuid.UUID
    secret: str

    def __str__(self) -> str:
        return f"{self.session_id}.{self.secret}"


def new_refresh_secret() -> str:
    """A fresh refresh-token secret: 256 random bits."""
    return secrets.token_urlsafe(_REFRESH_SECRET_BYTES)


def hash_refresh_secret(secret: str) -> str:
    """The only form of a refresh secret the database ever stores.

    SHA-256, not Argon2: the secret is 256 random bits, so nobody can guess it
    from its hash however fast the hash is, and a fast hash keeps refresh cheap.
    A stolen copy of the table holds no usable token.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_refresh_token(token: str) -> RefreshToken | None:
    """Split "<session id>.<secret>"; None for anything this service did not issue."""
    session_part, dot, secret = token.partition(".")
    if not dot or not secret or len(secret) > 64:
        return None
    try:
        return RefreshToken(session_id=uuid.UUID(session_part), secret=secret)
    except ValueError:
        return None
