"""Every SQL query of the service, behind a small repository per table."""

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncpg.exceptions import UniqueViolationError
from sqlalchemy import delete, exists, func, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AuthSession, SpentRefreshToken, User

EMAIL_UNIQUE_INDEX = "uq_users_email_lower"


class EmailTakenError(Exception):
    """Another account already uses this email address (compared case-insensitively)."""


class InvalidCursorError(Exception):
    """A pagination cursor that this service did not issue."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A users row as the service reads it: plain attributes, no ORM identity map."""

    id: uuid.UUID
    email: str
    full_name: str | None
    password_hash: str
    is_active: bool
    is_admin: bool
    created_at: datetime
    updated_at: datetime


# The columns every read returns, in UserRecord's order. Reading columns with a
# Core select skips the ORM's identity map and attribute instrumentation: the
# cheap path for the hottest query, get-by-id.
_COLUMNS = (
    User.id,
    User.email,
    User.full_name,
    User.password_hash,
    User.is_active,
    User.is_admin,
    User.created_at,
    User.updated_at,
)


def encode_cursor(created_at: datetime, user_id: uuid.UUID) -> str:
    """Make an opaque cursor that points just after this row."""
    raw = json.dumps([created_at.isoformat(), str(user_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Read a cursor made by encode_cursor; raise InvalidCursorError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at_text, id_text = json.loads(raw)
        # Both are strings in every cursor encode_cursor makes; uuid.UUID(1) would
        # raise AttributeError, which is not a sign of a bad cursor below.
        if not isinstance(created_at_text, str) or not isinstance(id_text, str):
            raise TypeError("cursor values are not strings")
        created_at = datetime.fromisoformat(created_at_text)
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        # In UTC, as the driver sends it: a far-off zone can put that outside
        # years 1-9999 ("0001-01-01T00:00:00+23:59"), an OverflowError here
        # rather than a 500 from the driver.
        return created_at.astimezone(UTC), uuid.UUID(id_text)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, OverflowError) as exc:
        # JSONDecodeError is a ValueError; unpacking the wrong shape, ValueError or TypeError.
        raise InvalidCursorError from exc


def _record(row: Sequence[Any]) -> UserRecord:
    return UserRecord(*row)


def _is_email_conflict(exc: IntegrityError) -> bool:
    cause = exc.orig.__cause__ if exc.orig is not None else None
    return isinstance(cause, UniqueViolationError) and cause.constraint_name == EMAIL_UNIQUE_INDEX


class UserRepository:
    """Queries on the users table. Callers commit: the repository never does."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(
        self,
        *,
        email: str,
        password_hash: str,
        full_name: str | None = None,
        is_admin: bool = False,
    ) -> UserRecord:
        """Insert a user; raise EmailTakenError when the address is taken."""
        statement = (
            insert(User)
            .values(
                email=email, password_hash=password_hash, full_name=full_name, is_admin=is_admin
            )
            .returning(*_COLUMNS)
        )
        try:
            # No "does it exist?" query first: two racing sign-ups would both
            # see "no". The unique index decides, atomically.
            row = (await self.session.execute(statement)).one()
        except IntegrityError as exc:
            if not _is_email_conflict(exc):
                raise
            # The failed INSERT aborted the transaction; roll back so the session stays usable.
            await self.session.rollback()
            raise EmailTakenError from None
        return _record(row)

    async def get(self, user_id: uuid.UUID) -> UserRecord | None:
        """Read one user by id."""
        row = (await self.session.execute(select(*_COLUMNS).where(User.id == user_id))).first()
        return None if row is None else _record(row)

    async def get_by_email(self, email: str) -> UserRecord | None:
        """Read one user by email, compared case-insensitively (uses the unique index)."""
        statement = select(*_COLUMNS).where(func.lower(User.email) == email.lower())
        row = (await self.session.execute(statement)).first()
        return None if row is None else _record(row)

    async def list_page(
        self, *, limit: int, cursor: str | None = None
    ) -> tuple[list[UserRecord], str | None]:
        """Read one page in (created_at, id) order; return it and the cursor of the next page."""
        statement = select(*_COLUMNS).order_by(User.created_at, User.id).limit(limit + 1)
        if cursor is not None:
            after = decode_cursor(cursor)
            # A row comparison walks the (created_at, id) index: no OFFSET, so
            # rows inserted meanwhile never shift or repeat a page.
            statement = statement.where(tuple_(User.created_at, User.id) > after)
        rows = [_record(row) for row in await self.session.execute(statement)]
        # One extra row tells whether another page exists without a COUNT.
        if len(rows) <= limit:
            return rows, None
        last = rows[limit - 1]
        return rows[:limit], encode_cursor(last.created_at, last.id)

    async def update(
        self, user_id: uuid.UUID, changes: dict[str, Any], *, if_password_hash: str | None = None
    ) -> UserRecord | None:
        """Change the given columns of one user; return the new row, or None if none matched.

        With if_password_hash, only an active user whose stored hash is still that
        one matches: a write based on a password checked moments ago (Argon2 takes
        ~100 ms) never lands on top of a password changed meanwhile.
        """
        if not changes:
            return await self.get(user_id)
        statement = update(User).where(User.id == user_id)
        if if_password_hash is not None:
            # A concurrent change's UPDATE holds the row: this one waits for its
            # commit, then re-reads the row, and matches nothing.
            statement = statement.where(User.password_hash == if_password_hash, User.is_active)
        # updated_at is set by the column's onupdate=now().
        row = (await self.session.execute(statement.values(**changes).returning(*_COLUMNS))).first()
        return None if row is None else _record(row)

    async def lock_if_password_unchanged(self, user_id: uuid.UUID, password_hash: str) -> bool:
        """Lock an active user's row if its hash is still password_hash; return whether it is.

        FOR SHARE, until the transaction ends: a password change (an UPDATE of
        the row) waits for this transaction, then revokes what it started; a
        change already under way makes this wait, then see the new hash. Two
        logins of one user may hold the lock at once.
        """
        statement = (
            select(User.id)
            .where(User.id == user_id, User.password_hash == password_hash, User.is_active)
            .with_for_update(read=True)
        )
        return (await self.session.execute(statement)).first() is not None

    async def lock_active_admin_ids(self) -> list[uuid.UUID]:
        """Lock the active admins' rows and return their ids (until the transaction ends).

        Two admins demoting each other at once would each see the other still
        in place; FOR UPDATE makes the second wait and see the first's change.
        """
        statement = (
            select(User.id).where(User.is_admin, User.is_active).order_by(User.id).with_for_update()
        )
        return list((await self.session.scalars(statement)).all())

    async def lock(self, user_id: uuid.UUID) -> bool:
        """Lock one user's row until the transaction ends; return whether it exists.

        FOR UPDATE waits for a login holding the row (FOR SHARE) to commit: the
        session it started is then visible to the statements that follow.
        """
        statement = select(User.id).where(User.id == user_id).with_for_update()
        return (await self.session.execute(statement)).first() is not None

    async def delete(self, user_id: uuid.UUID) -> bool:
        """Delete one user; return whether it existed."""
        statement = delete(User).where(User.id == user_id).returning(User.id)
        return (await self.session.execute(statement)).first() is not None


# --- login sessions -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveSession:
    """A live session's user (an active one) and when the session expires."""

    user: UserRecord
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A live login session as its owner sees it."""

    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    ip: str | None


_LIVE = (AuthSession.revoked_at.is_(None), AuthSession.expires_at > func.now())


class SessionRepository:
    """Queries on auth_sessions. Callers commit: the repository never does."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def load_authenticated(
        self, session_id: uuid.UUID, user_id: uuid.UUID
    ) -> LiveSession | None:
        """Return the caller's user if their session is live and their account active, else None.

        Every authenticated request whose session marker is not in Redis runs
        this, so it is one statement on two primary keys, reading plain columns.
        """
        statement = (
            select(*_COLUMNS, AuthSession.expires_at)
            .join_from(AuthSession, User, AuthSession.user_id == User.id)
            .where(AuthSession.id == session_id, AuthSession.user_id == user_id, *_LIVE)
            .where(User.is_active)
        )
        row = (await self.session.execute(statement)).first()
        return None if row is None else LiveSession(_record(row[:-1]), row[-1])

    async def create(
        self,
        *,
        user_id: uuid.UUID,
        refresh_token_hash: str,
        ttl_seconds: int,
        user_agent: str | None,
        ip: str | None,
    ) -> uuid.UUID:
        """Start a session; return its id."""
        statement = (
            insert(AuthSession)
            .values(
                user_id=user_id,
                refresh_token_hash=refresh_token_hash,
                user_agent=user_agent,
                ip=ip,
                expires_at=func.now() + timedelta(seconds=ttl_seconds),
            )
            .returning(AuthSession.id)
        )
        return (await self.session.execute(statement)).scalar_one()

    async def rotate(self, session_id: uuid.UUID, old_hash: str, new_hash: str) -> uuid.UUID | None:
        """Swap the refresh-token hash if old_hash is the current one; return the user id.

        One conditional UPDATE decides: of concurrent refreshes with one token,
        the row lock lets exactly one match; the others wait for its commit, see
        the new hash and get None. The hash it replaced is recorded as spent.
        """
        statement = (
            update(AuthSession)
            .where(AuthSession.id == session_id, AuthSession.refresh_token_hash == old_hash, *_LIVE)
            .where(AuthSession.user_id == User.id, User.is_active)
            .values(refresh_token_hash=new_hash, last_used_at=func.now())
            .returning(AuthSession.user_id)
        )
        user_id = (await self.session.execute(statement)).scalar_one_or_none()
        if user_id is not None:
            # In the same transaction, under the row lock the UPDATE holds to the
            # commit: a refresh that lost the race sees the new hash and this one together.
            spent = insert(SpentRefreshToken).values(session_id=session_id, token_hash=old_hash)
            await self.session.execute(spent)
        return user_id

    async def revoke_on_replay(self, session_id: uuid.UUID, presented_hash: str) -> bool:
        """Revoke a live session if it has spent the presented secret; return whether it was.

        Only a secret that was valid once proves a token was copied: anything
        else is a guess by someone who read the session id (every access token
        carries it), and must not be able to end the session.
        """
        was_spent = exists().where(
            SpentRefreshToken.session_id == session_id,
            SpentRefreshToken.token_hash == presented_hash,
        )
        statement = (
            update(AuthSession)
            .where(AuthSession.id == session_id, was_spent, *_LIVE)
            .values(revoked_at=func.now())
            .returning(AuthSession.id)
        )
        return (await self.session.execute(statement)).first() is not None

    async def revoke(self, session_id: uuid.UUID, *, user_id: uuid.UUID | None = None) -> bool:
        """Revoke one live session (only if it is user_id's, when given); return whether it was."""
        statement = update(AuthSession).where(AuthSession.id == session_id, *_LIVE)
        if user_id is not None:
            statement = statement.where(AuthSession.user_id == user_id)
        statement = statement.values(revoked_at=func.now()).returning(AuthSession.id)
        return (await self.session.execute(statement)).first() is not None

    async def revoke_all(
        self, user_id: uuid.UUID, *, keep: uuid.UUID | None = None
    ) -> list[uuid.UUID]:
        """Revoke every live session of a user except `keep`; return their ids."""
        statement = update(AuthSession).where(AuthSession.user_id == user_id, *_LIVE)
        if keep is not None:
            statement = statement.where(AuthSession.id != keep)
        statement = statement.values(revoked_at=func.now()).returning(AuthSession.id)
        return list((await self.session.scalars(statement)).all())

    async def live_ids(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        """The ids of a user's live sessions."""
        statement = select(AuthSession.id).where(AuthSession.user_id == user_id, *_LIVE)
        return list((await self.session.scalars(statement)).all())

    async def list_live(self, user_id: uuid.UUID) -> list[SessionRecord]:
        """A user's live sessions, newest first."""
        statement = (
            select(
                AuthSession.id,
                AuthSession.created_at,
                AuthSession.last_used_at,
                AuthSession.expires_at,
                AuthSession.user_agent,
                AuthSession.ip,
            )
            .where(AuthSession.user_id == user_id, *_LIVE)
            .order_by(AuthSession.created_at.desc(), AuthSession.id)
        )
        return [SessionRecord(*row) for row in await self.session.execute(statement)]
