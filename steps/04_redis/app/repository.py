"""Every SQL query of the service, behind a small repository per table."""

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asyncpg.exceptions import UniqueViolationError
from sqlalchemy import delete, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import User

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
        self, *, email: str, password_hash: str, full_name: str | None = None
    ) -> UserRecord:
        """Insert a user; raise EmailTakenError when the address is taken."""
        statement = (
            insert(User)
            .values(email=email, password_hash=password_hash, full_name=full_name)
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

    async def update(self, user_id: uuid.UUID, changes: dict[str, Any]) -> UserRecord | None:
        """Change the given columns of one user; return the new row, or None if there is none."""
        if not changes:
            return await self.get(user_id)
        # updated_at is set by the column's onupdate=now().
        statement = update(User).where(User.id == user_id).values(**changes).returning(*_COLUMNS)
        row = (await self.session.execute(statement)).first()
        return None if row is None else _record(row)

    async def delete(self, user_id: uuid.UUID) -> bool:
        """Delete one user; return whether it existed."""
        statement = delete(User).where(User.id == user_id).returning(User.id)
        return (await self.session.execute(statement)).first() is not None
