"""Request and response bodies: what the API accepts and what it returns."""

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints


# --8<-- [start:storable]
def _check_storable(text: str) -> str:
    """Refuse text that PostgreSQL cannot store or UTF-8 cannot encode."""
    # Both arrive as JSON escapes ("\u0000", "\ud800") and would otherwise fail
    # deep down (asyncpg, the password hasher) as a 500.
    if "\x00" in text:
        raise ValueError("Text must not contain NUL characters.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("Text must be valid Unicode, without lone surrogates.") from None
    return text


_STORABLE = AfterValidator(_check_storable)
# Text a client sends, checked to be storable. Types with limits put them before
# the check: pydantic applies a constraint written after a validator to the
# validator's output, as a generic check (strip_whitespace would come too late).
StorableStr = Annotated[str, _STORABLE]
# Bounded on both sides and never truncated: a longer password is refused, not cut.
Password = Annotated[str, Field(min_length=8, max_length=128), _STORABLE]
FullName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), _STORABLE
]
# --8<-- [end:storable]
# The whole address is stored lower-cased. RFC 5321 lets the local part be case
# sensitive, but no mainstream provider treats it so, and one spelling per
# person makes uniqueness and login lookups simple (the unique index on
# lower(email) enforces the same rule in the database). email-validator already
# refuses NUL characters and lone surrogates in an address.
NormalisedEmail = Annotated[EmailStr, AfterValidator(str.lower)]


class _WriteModel(BaseModel):
    """Base of request bodies: unknown fields and type coercion are refused."""

    # strict: `"full_name": 5` or `"is_admin": "yes"` is a 422, not a silent conversion.
    model_config = ConfigDict(extra="forbid", strict=True)


class UserCreate(_WriteModel):
    """Sign-up body."""

    email: NormalisedEmail
    password: Password
    full_name: FullName | None = None


class UserUpdate(_WriteModel):
    """What may be changed about a user: the name (null clears it)."""

    full_name: FullName | None = None


class UserPublic(BaseModel):
    """A user as the API shows it: never the password hash."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str | None
    is_active: bool
    is_admin: bool
    created_at: datetime
    updated_at: datetime


class UserPage(BaseModel):
    """One page of users; pass next_cursor back to get the next page (null: no more)."""

    items: list[UserPublic]
    next_cursor: str | None
