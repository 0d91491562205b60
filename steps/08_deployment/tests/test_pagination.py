"""Keyset pagination: every user once, in order, while users come and go between pages."""

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection
from tests.conftest import bearer, log_in, promote

pytestmark = pytest.mark.task("pagination")

USERS = "/api/v1/users"
SortKey = tuple[datetime, uuid.UUID]


def sort_key(user: dict[str, Any]) -> SortKey:
    """Where a user stands in the list's order: oldest first, then by id."""
    return datetime.fromisoformat(user["created_at"]), uuid.UUID(user["id"])


async def sign_up(client: httpx.AsyncClient, email: str) -> dict[str, Any]:
    """Sign a user up and return it."""
    response = await client.post(USERS, json={"email": email, "password": "long enough"})
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()
    return user


@pytest.fixture
async def admin(client: httpx.AsyncClient, connection: AsyncConnection) -> dict[str, Any]:
    """An admin, the first user; the client sends their token (only admins list users)."""
    user = await sign_up(client, "admin@example.com")
    await promote(connection, user["id"])
    user["is_admin"] = True
    client.headers.update(
        bearer((await log_in(client, user["email"], "long enough"))["access_token"])
    )
    return user


async def get_page(
    client: httpx.AsyncClient, *, limit: int, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of users and the cursor of the next."""
    params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
    response = await client.get(USERS, params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"], response.json()["next_cursor"]


async def sign_up_one_that_sorts_before(
    client: httpx.AsyncClient, position: SortKey, prefix: str
) -> None:
    """Sign up users until one lands before `position` in the list's order.

    Inside one test's transaction every row has the same created_at (now() is
    the transaction's start), so the order among them is the id's, which is
    random: a new user sorts before a given one often, and within 64 tries
    all but certainly. Such a row shifts every OFFSET page after it.
    """
    for attempt in range(64):
        if sort_key(await sign_up(client, f"{prefix}-{attempt}@example.com")) < position:
            return
    pytest.fail("No new user sorted before the cursor in 64 sign-ups.")


async def test_pages_list_every_user_once_oldest_first(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    created = [admin] + [await sign_up(client, f"user{n}@example.com") for n in range(4)]

    seen: list[dict[str, Any]] = []
    page, cursor = await get_page(client, limit=2)
    seen += page
    pages = 1
    while cursor is not None:
        page, cursor = await get_page(client, limit=2, cursor=cursor)
        seen += page
        pages += 1

    assert pages == 3
    assert seen == sorted(created, key=sort_key)


async def test_the_last_full_page_has_no_next_cursor(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    for n in range(1):  # and the admin
        await sign_up(client, f"user{n}@example.com")

    page, cursor = await get_page(client, limit=2)

    assert len(page) == 2
    assert cursor is None


async def test_a_list_of_only_the_admin_is_one_page(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    assert await get_page(client, limit=10) == ([admin], None)


async def test_limit_defaults_to_50(client: httpx.AsyncClient, admin: dict[str, Any]) -> None:
    for n in range(50):  # and the admin
        await sign_up(client, f"user{n}@example.com")

    response = await client.get(USERS)

    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == 50
    assert response.json()["next_cursor"] is not None


async def test_pages_stay_stable_while_users_sign_up_between_them(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    original = {(await sign_up(client, f"user{n}@example.com"))["id"] for n in range(6)}
    original.add(admin["id"])

    seen: list[str] = []
    page, cursor = await get_page(client, limit=3)
    seen += [user["id"] for user in page]
    for round_ in range(50):
        if cursor is None:
            break
        # A user who sorts before the cursor: with OFFSET, the next page would
        # start one row early and repeat the last row of this one.
        await sign_up_one_that_sorts_before(client, sort_key(page[-1]), f"late{round_}")
        page, cursor = await get_page(client, limit=3, cursor=cursor)
        seen += [user["id"] for user in page]

    assert cursor is None, "the walk did not end"
    assert len(seen) == len(set(seen)), "a user appeared on two pages"
    assert original <= set(seen), "a user who was there all along was skipped"


async def test_pages_skip_nobody_when_a_listed_user_is_deleted_between_them(
    client: httpx.AsyncClient, admin: dict[str, Any]
) -> None:
    created = sorted(
        [admin] + [await sign_up(client, f"user{n}@example.com") for n in range(5)], key=sort_key
    )

    first, cursor = await get_page(client, limit=3)
    # With OFFSET, deleting a row already shown moves an unseen one onto the page just read.
    shown = next(user for user in first if user["id"] != admin["id"])
    deleted = await client.delete(f"{USERS}/{shown['id']}")
    assert deleted.status_code == 204, deleted.text
    second, cursor = await get_page(client, limit=3, cursor=cursor)

    assert first == created[:3]
    assert second == created[3:]
    assert cursor is None
