"""Request and response bodies: what the API accepts and what it returns."""

import uuid
from datetime import datetime
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)

# Bounded on both sides and never truncated: a longer password is refused, not cut.
Password = Annotated[str, Field(min_length=8, max_length=128)]
FullName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
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
    current_password: Annotated[str, Field(max_length=128)] | None = None

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
