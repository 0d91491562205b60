"""UserRepository against the real database, inside the test's transaction."""

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.repository import (
    EmailTakenError,
    InvalidCursorError,
    UserRepository,
    decode_cursor,
    encode_cursor,
)


async def _create(repo: UserRepository, email: str) -> uuid.UUID:
    return (await repo.create(email=email, password_hash="hash")).id


async def test_create_then_get_by_id_and_by_email(session: AsyncSession) -> None:
    repo = UserRepository(session)
    created = await repo.create(email="ada@example.com", password_hash="hash", full_name="Ada")
    assert created.is_active
    assert not created.is_admin
    assert await repo.get(created.id) == created
    assert await repo.get_by_email("ADA@example.com") == created


async def test_get_unknown_user_returns_none(session: AsyncSession) -> None:
    repo = UserRepository(session)
    assert await repo.get(uuid.uuid4()) is None
    assert await repo.get_by_email("nobody@example.com") is None


async def test_create_with_taken_email_raises_and_leaves_the_session_usable(
    session: AsyncSession,
) -> None:
    repo = UserRepository(session)
    await repo.create(email="ada@example.com", password_hash="hash")
    await session.commit()
    with pytest.raises(EmailTakenError):
        await repo.create(email="ada@example.com", password_hash="other")
    assert await repo.get_by_email("ada@example.com") is not None


async def test_update_changes_only_the_given_columns(session: AsyncSession) -> None:
    repo = UserRepository(session)
    user_id = await _create(repo, "ada@example.com")
    updated = await repo.update(user_id, {"full_name": "Ada L.", "is_admin": True})
    assert updated is not None
    assert (updated.full_name, updated.is_admin, updated.email) == (
        "Ada L.",
        True,
        "ada@example.com",
    )
    assert await repo.get(user_id) == updated


async def test_update_unknown_user_returns_none(session: AsyncSession) -> None:
    assert await UserRepository(session).update(uuid.uuid4(), {"full_name": "x"}) is None


async def test_delete_removes_the_user_once(session: AsyncSession) -> None:
    repo = UserRepository(session)
    user_id = await _create(repo, "ada@example.com")
    assert await repo.delete(user_id) is True
    assert await repo.get(user_id) is None
    assert await repo.delete(user_id) is False


async def test_pages_are_stable_while_rows_are_inserted(session: AsyncSession) -> None:
    repo = UserRepository(session)
    original = {await _create(repo, f"user{n}@example.com") for n in range(7)}
    seen: list[uuid.UUID] = []
    page, cursor = await repo.list_page(limit=3)
    seen += [user.id for user in page]
    extra = 0
    while cursor is not None:
        # Rows arriving between pages must neither repeat nor hide existing ones.
        await _create(repo, f"late{extra}@example.com")
        extra += 1
        page, cursor = await repo.list_page(limit=3, cursor=cursor)
        seen += [user.id for user in page]
    assert len(seen) == len(set(seen)), "a row appeared on two pages"
    assert original <= set(seen), "an existing row was skipped"


async def test_last_page_has_no_cursor(session: AsyncSession) -> None:
    repo = UserRepository(session)
    for n in range(2):
        await _create(repo, f"user{n}@example.com")
    page, cursor = await repo.list_page(limit=2)
    assert len(page) == 2
    assert cursor is None


def test_cursor_round_trips() -> None:
    from datetime import UTC, datetime

    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    user_id = uuid.uuid4()
    assert decode_cursor(encode_cursor(moment, user_id)) == (moment, user_id)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "bm90IGpzb24",
        "WzEsIDJd",
        "WyIyMDI2LTAxLTAyIiwgIngiXQ",
        "é",
        # ["2026-01-02T03:04:05+00:00", 1]: the right shape, an id of the wrong type.
        "WyIyMDI2LTAxLTAyVDAzOjA0OjA1KzAwOjAwIiwgMV0",
    ],
)
def test_garbage_cursor_raises_invalid_cursor(cursor: str) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor)
