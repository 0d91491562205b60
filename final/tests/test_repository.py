"""UserRepository against the real database, inside the test's transaction."""

import string
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, insert, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import User
from app.repository import (
    EmailTakenError,
    InvalidCursorError,
    UserRepository,
    decode_cursor,
    encode_cursor,
)


async def _create(repo: UserRepository, email: str) -> uuid.UUID:
    return (await repo.create(email=email, password_hash="hash")).id


async def _walk(repo: UserRepository, *, limit: int) -> list[uuid.UUID]:
    """Every id, page after page, in the order the pages give them."""
    page, cursor = await repo.list_page(limit=limit)
    seen = [user.id for user in page]
    while cursor is not None:
        page, cursor = await repo.list_page(limit=limit, cursor=cursor)
        seen += [user.id for user in page]
    return seen


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


async def test_create_raises_a_unique_violation_of_another_index_as_it_is(
    session: AsyncSession,
) -> None:
    # Only the email index means "this address is taken" (a 409 that tells the
    # client to pick another address): any other unique index, a column made
    # unique later say, must fail as itself. DDL is transactional in PostgreSQL:
    # this index lives and dies with the test's transaction.
    await session.execute(text("CREATE UNIQUE INDEX uq_test_full_name ON users (full_name)"))
    repo = UserRepository(session)
    await repo.create(email="ada@example.com", password_hash="hash", full_name="Ada")
    with pytest.raises(IntegrityError, match="uq_test_full_name"):
        await repo.create(email="eve@example.com", password_hash="hash", full_name="Ada")


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


async def test_update_with_no_changes_returns_the_user_as_it_is(session: AsyncSession) -> None:
    # PATCH with an empty body: nothing to write, the user is still the answer (not a 404).
    repo = UserRepository(session)
    created = await repo.create(email="ada@example.com", password_hash="hash")
    assert await repo.update(created.id, {}) == created


# What a password change or a deactivation does to the stored row, between a
# password check (Argon2, ~100 ms) and the write or lock that relies on it.
SINCE_THE_CHECK = [
    pytest.param({"password_hash": "changed meanwhile"}, id="password-changed"),
    pytest.param({"is_active": False}, id="deactivated"),
]


@pytest.mark.parametrize("since_the_check", SINCE_THE_CHECK)
async def test_update_if_password_hash_matches_nothing_once_the_password_or_the_account_changed(
    session: AsyncSession, since_the_check: dict[str, Any]
) -> None:
    repo = UserRepository(session)
    user_id = await _create(repo, "ada@example.com")
    assert await repo.update(user_id, {"full_name": "Ada"}, if_password_hash="hash") is not None
    await repo.update(user_id, since_the_check)
    assert await repo.update(user_id, {"full_name": "Eve"}, if_password_hash="hash") is None
    after = await repo.get(user_id)
    assert after is not None
    assert after.full_name == "Ada"


@pytest.mark.parametrize("since_the_check", SINCE_THE_CHECK)
async def test_lock_if_password_unchanged_is_false_once_the_password_or_the_account_changed(
    session: AsyncSession, since_the_check: dict[str, Any]
) -> None:
    repo = UserRepository(session)
    user_id = await _create(repo, "ada@example.com")
    # Another active account with the same stored hash. Argon2's salts make that
    # impossible in practice; the lock must not rest on it: only ada's row answers for her.
    await _create(repo, "bob@example.com")
    assert await repo.lock_if_password_unchanged(user_id, "hash") is True
    await repo.update(user_id, since_the_check)
    assert await repo.lock_if_password_unchanged(user_id, "hash") is False


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


async def test_pages_follow_created_at_not_the_id(session: AsyncSession) -> None:
    repo = UserRepository(session)
    ids = sorted([await _create(repo, f"user{n}@example.com") for n in range(5)])
    # Rows written in one transaction share now(): date them apart, the lowest id
    # the newest, so that the id order and the created_at order disagree.
    for days_old, user_id in enumerate(ids):
        aged = update(User).where(User.id == user_id)
        await session.execute(aged.values(created_at=func.now() - timedelta(days=days_old)))
    walked = [user_id for user_id in await _walk(repo, limit=2) if user_id in ids]
    assert walked == ids[::-1]


async def test_rows_created_at_the_same_moment_are_paged_in_id_order_whatever_the_plan(
    session: AsyncSession,
) -> None:
    # One transaction, one now(): every row ties on created_at. Stored in
    # descending id order, so that the table's own order is not the id order.
    ids = sorted(uuid.uuid4() for _ in range(6))
    rows = [{"id": i, "email": f"{i}@example.com", "password_hash": "hash"} for i in ids[::-1]]
    await session.execute(insert(User), rows)
    # The (created_at, id) index hands out ties in id order by itself. With a scan
    # and a sort instead (a plan a bigger table or page can get), ties come as
    # stored, and only the id in the ORDER BY keeps the (created_at, id) cursor
    # from skipping or repeating them: the index is switched off to check that.
    await session.execute(text("SET LOCAL enable_indexscan = off"))
    walked = await _walk(UserRepository(session), limit=2)
    assert [user_id for user_id in walked if user_id in ids] == ids


async def test_last_page_has_no_cursor(session: AsyncSession) -> None:
    repo = UserRepository(session)
    for n in range(2):
        await _create(repo, f"user{n}@example.com")
    page, cursor = await repo.list_page(limit=2)
    assert len(page) == 2
    assert cursor is None


def test_cursor_round_trips() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    user_id = uuid.uuid4()
    assert decode_cursor(encode_cursor(moment, user_id)) == (moment, user_id)


URL_SAFE = frozenset(string.ascii_letters + string.digits + "-_")


@pytest.mark.parametrize(
    ("moment", "dropped"),
    [
        pytest.param(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), 0, id="no-padding"),
        pytest.param(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), 2, id="two-dropped"),
        # The database's timestamps are UTC: the service's own cursors drop two "="
        # or none. The third length takes an offset with microseconds, which
        # datetime.timezone accepts (and isoformat writes out).
        pytest.param(
            datetime(2026, 1, 2, 3, 4, 5, 678901, timezone(timedelta(hours=5, microseconds=1))),
            1,
            id="one-dropped",
        ),
    ],
)
def test_a_cursor_is_url_safe_and_decodes_whatever_padding_it_dropped(
    moment: datetime, dropped: int
) -> None:
    user_id = uuid.UUID("0b0f6c57-3d5e-4a38-9a43-7c1f2a9e5d10")
    cursor = encode_cursor(moment, user_id)
    # No "=" padding: a cursor goes into a query string as it is, with nothing to escape.
    assert set(cursor) <= URL_SAFE, cursor
    assert -len(cursor) % 4 == dropped, "this case no longer exercises its padding"
    assert decode_cursor(cursor) == (moment, user_id)


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
