"""Request and response bodies: what the API accepts and what it returns."""

import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)


def _storable(text: str) -> str:
    """Refuse text that PostgreSQL cannot store, before it reaches a query."""
    # PostgreSQL's text types cannot hold U+0000: the driver would fail the query (a 500).
    if "\x00" in text:
        raise ValueError("Text cannot contain NUL (U+0000) characters.")
    # A lone surrogate ("\ud800" in JSON) is a valid Python str but no UTF-8 at all.
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise ValueError("Text must be valid Unicode: lone surrogates are refused.") from None
    return text


# Every text a client sends carries this check, so it is made once, at the
# boundary: a 422 like any other invalid field, never a driver error. Put it
# last in an Annotated, after the length constraints.
STORABLE = AfterValidator(_storable)
StorableStr = Annotated[str, STORABLE]

# Bounded on both sides and never truncated: a longer password is refused, not cut.
Password = Annotated[str, Field(min_length=8, max_length=128), STORABLE]
FullName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), STORABLE
]
# The whole address is stored lower-cased. RFC 5321 lets the local part be case
# sensitive, but no mainstream provider treats it so, and one spelling per
# person makes uniqueness and login lookups simple (the unique index on
# lower(email) enforces the same rule in the database).
NormalisedEmail = Annotated[EmailStr, AfterValidator(str.lower)]


class _WriteModel(BaseModel):
    """Base of request bodies: unknown fields and type coercion are refused."""

    # strict: `"full_name": 5` or `"is_admin": "yes"` is a 422, not a silent conversion.
    model_config = ConfigDict(extra="forbid", strict=True)

    def _refuse_explicit_null(self, *names: str) -> None:
        for name in names:
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"Field {name} cannot be null; leave it out to keep its value.")


class UserCreate(_WriteModel):
    """Sign-up body."""

    email: NormalisedEmail
    password: Password
    full_name: FullName | None = None


class UserUpdate(_WriteModel):
    """What users may change about themselves."""

    full_name: FullName | None = None
    password: Password | None = None
    current_password: Annotated[str, Field(max_length=128), STORABLE] | None = None

    @model_validator(mode="after")
    def _password_change_needs_current_password(self) -> Self:
        self._refuse_explicit_null("password")
        if self.password is not None and self.current_password is None:
            raise ValueError("Changing the password needs current_password.")
        return self


class UserAdminUpdate(_WriteModel):
    """What an admin may change about any user."""

    full_name: FullName | None = None
    is_active: bool | None = None
    is_admin: bool | None = None

    @model_validator(mode="after")
    def _flags_are_not_null(self) -> Self:
        self._refuse_explicit_null("is_active", "is_admin")
        return self


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


# --- authentication --------------------------------------------------------------

# Bounded, but loosely: anything that is not one of our refresh tokens (an
# access token pasted by mistake, say) gets the same 401 as a spent token.
RefreshTokenText = Annotated[str, Field(min_length=1, max_length=4096), STORABLE]


class Token(BaseModel):
    """A token pair, as the OAuth2 password flow returns it."""

    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the OAuth2 token type)
    expires_in: int = Field(description="Seconds until the access token expires.")


class RefreshRequest(_WriteModel):
    """Body of POST /auth/refresh."""

    refresh_token: RefreshTokenText


class LogoutRequest(_WriteModel):
    """Body of POST /auth/logout; optional, since the access token names the session."""

    refresh_token: RefreshTokenText | None = None


class SessionPublic(BaseModel):
    """One of the caller's live login sessions."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool = Field(
        description="Whether this is the session of the token making the request."
    )
