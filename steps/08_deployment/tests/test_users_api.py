"""The users resource over HTTP: sign-up, read, update, delete, and what each one stores."""

import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool
from tests.conftest import (
    assert_problem,
    bearer,
    delete_all_users,
    log_in,
    make_settings,
    promote,
    served_logs,
)

from app.main import create_app

pytestmark = pytest.mark.task("users")

USERS = "/api/v1/users"
PASSWORD = "correct horse battery"
PUBLIC_FIELDS = {"id", "email", "full_name", "is_active", "is_admin", "created_at", "updated_at"}


def signup(email: str = "ada@example.com", **extra: Any) -> dict[str, Any]:
    """A sign-up body."""
    return {"email": email, "password": PASSWORD, **extra}


async def create(client: httpx.AsyncClient, email: str = "ada@example.com", **extra: Any) -> Any:
    """Sign a user up and return the created user."""
    response = await client.post(USERS, json=signup(email, **extra))
    assert response.status_code == 201, response.text
    return response.json()


# --- sign-up --------------------------------------------------------------------------


async def test_sign_up_returns_201_with_the_public_user(client: httpx.AsyncClient) -> None:
    response = await client.post(USERS, json=signup(full_name="Ada Lovelace"))

    assert response.status_code == 201, response.text
    user = response.json()
    assert set(user) == PUBLIC_FIELDS
    assert uuid.UUID(user["id"])
    assert user["email"] == "ada@example.com"
    assert user["full_name"] == "Ada Lovelace"
    assert (user["is_active"], user["is_admin"]) == (True, False)
    assert user["created_at"] == user["updated_at"]


async def test_sign_up_stores_the_email_lower_cased(client: httpx.AsyncClient) -> None:
    user = await create(client, "Grace.Hopper@Example.COM")

    assert user["email"] == "grace.hopper@example.com"


async def test_sign_up_strips_the_full_name(client: httpx.AsyncClient) -> None:
    user = await create(client, full_name="  Ada Lovelace \n")

    assert user["full_name"] == "Ada Lovelace"


async def test_sign_up_without_a_name_stores_none(client: httpx.AsyncClient) -> None:
    user = await create(client)

    assert user["full_name"] is None


async def test_sign_up_stores_an_argon2id_hash_never_the_password(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    response = await client.post(USERS, json=signup())

    assert response.status_code == 201, response.text
    assert PASSWORD not in response.text
    assert "argon2" not in response.text
    stored = await connection.scalar(
        text("SELECT password_hash FROM users WHERE id = :id"), {"id": response.json()["id"]}
    )
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_two_sign_ups_with_one_password_store_different_hashes(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    await create(client, "ada@example.com")
    await create(client, "grace@example.com")

    hashes = (await connection.scalars(text("SELECT password_hash FROM users"))).all()

    # A random salt per hash: equal passwords do not show in the table.
    assert len(set(hashes)) == 2


async def test_sign_up_with_a_taken_email_in_another_case_returns_409(
    client: httpx.AsyncClient,
) -> None:
    await create(client, "ada@example.com")

    response = await client.post(USERS, json=signup("ADA@Example.com"))

    body = assert_problem(response, 409)
    assert body["detail"] == "An account with this email address already exists."


async def test_sign_up_accepts_a_password_of_128_characters_and_refuses_129(
    client: httpx.AsyncClient,
) -> None:
    accepted = await client.post(USERS, json=signup(password="p" * 128))
    refused = await client.post(USERS, json=signup("bob@example.com", password="p" * 129))

    assert accepted.status_code == 201, accepted.text
    # Refused rather than cut: a password is never silently truncated.
    assert refused.status_code == 422, refused.text


# --- read, update, delete: yourself, with your own token ----------------------------------


async def headers_of(client: httpx.AsyncClient, user: dict[str, Any]) -> dict[str, str]:
    """Log the user in; the Authorization header of their new session."""
    return bearer((await log_in(client, user["email"], PASSWORD))["access_token"])


async def admin_headers(client: httpx.AsyncClient, connection: AsyncConnection) -> dict[str, str]:
    """Sign an admin up and log them in."""
    admin = await create(client, "admin@example.com")
    await promote(connection, admin["id"])
    return await headers_of(client, admin)


async def test_get_user_returns_what_sign_up_returned(client: httpx.AsyncClient) -> None:
    created = await create(client, full_name="Ada")

    response = await client.get(
        f"{USERS}/{created['id']}", headers=await headers_of(client, created)
    )

    assert response.status_code == 200, response.text
    assert response.json() == created


async def test_get_unknown_user_returns_404(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    headers = await admin_headers(client, connection)

    response = await client.get(f"{USERS}/{uuid.uuid4()}", headers=headers)

    assert assert_problem(response, 404)["detail"] == "No user with this id exists."


async def test_update_changes_only_the_name(client: httpx.AsyncClient) -> None:
    created = await create(client, full_name="Ada")
    headers = await headers_of(client, created)

    response = await client.patch(f"{USERS}/me", json={"full_name": "Ada L."}, headers=headers)

    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["full_name"] == "Ada L."
    unchanged = {"id", "email", "is_active", "is_admin", "created_at"}
    assert {k: updated[k] for k in unchanged} == {k: created[k] for k in unchanged}
    assert (await client.get(f"{USERS}/{created['id']}", headers=headers)).json() == updated


async def test_update_with_null_name_clears_it(client: httpx.AsyncClient) -> None:
    created = await create(client, full_name="Ada")
    headers = await headers_of(client, created)

    response = await client.patch(f"{USERS}/me", json={"full_name": None}, headers=headers)

    assert response.status_code == 200, response.text
    assert response.json()["full_name"] is None


async def test_update_with_an_empty_body_changes_nothing(client: httpx.AsyncClient) -> None:
    created = await create(client, full_name="Ada")
    headers = await headers_of(client, created)

    response = await client.patch(f"{USERS}/me", json={}, headers=headers)

    assert response.status_code == 200, response.text
    assert response.json() == created


async def test_update_unknown_user_returns_404(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    headers = await admin_headers(client, connection)
    for body in ({"full_name": "Nobody"}, {}):
        response = await client.patch(f"{USERS}/{uuid.uuid4()}", json=body, headers=headers)

        assert response.status_code == 404, response.text


async def test_delete_returns_204_and_the_user_is_gone(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    created = await create(client)
    headers = await headers_of(client, created)
    admin = await admin_headers(client, connection)

    deleted = await client.delete(f"{USERS}/{created['id']}", headers=headers)
    again = await client.delete(f"{USERS}/{created['id']}", headers=admin)

    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""
    assert (await client.get(f"{USERS}/{created['id']}", headers=admin)).status_code == 404
    assert again.status_code == 404, again.text
    # The account's sessions went with it: its token is refused at once.
    assert (await client.get(f"{USERS}/me", headers=headers)).status_code == 401


async def test_a_deleted_users_email_can_sign_up_again(client: httpx.AsyncClient) -> None:
    created = await create(client, "ada@example.com")
    headers = await headers_of(client, created)
    assert (await client.delete(f"{USERS}/{created['id']}", headers=headers)).status_code == 204

    again = await create(client, "Ada@example.com")

    assert again["id"] != created["id"]


# --- every write is committed before its answer ------------------------------------------


async def committed_users(database: str) -> dict[str, str | None]:
    """The users PostgreSQL has committed, as {email: full name}, read on another connection."""
    engine = create_async_engine(database, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT email, full_name FROM users"))
            return {row.email: row.full_name for row in rows}
    finally:
        await engine.dispose()


async def test_each_write_is_committed_when_its_answer_arrives(
    committing_client: httpx.AsyncClient, database: str
) -> None:
    created = await create(committing_client, "ada@example.com", full_name="Ada")
    assert await committed_users(database) == {"ada@example.com": "Ada"}

    headers = await headers_of(committing_client, created)
    updated = await committing_client.patch(
        f"{USERS}/me", json={"full_name": "A."}, headers=headers
    )
    assert updated.status_code == 200, updated.text
    assert await committed_users(database) == {"ada@example.com": "A."}
    # Its own transaction, so a later now(): updated_at moves, created_at does not.
    assert updated.json()["updated_at"] > created["updated_at"]
    assert updated.json()["created_at"] == created["created_at"]

    deleted = await committing_client.delete(f"{USERS}/{created['id']}", headers=headers)
    assert deleted.status_code == 204, deleted.text
    assert await committed_users(database) == {}


async def test_a_tests_writes_stay_in_its_own_transaction(
    client: httpx.AsyncClient, database: str
) -> None:
    # The fixtures' outer transaction: what this test writes, no other connection
    # sees, and the rollback after the test removes it.
    await create(client, "isolated@example.com")

    assert await committed_users(database) == {}


async def test_a_sign_up_cancelled_by_the_statement_timeout_shows_no_parameter(
    database: str, capfd: pytest.CaptureFixture[str]
) -> None:
    # What the server logs for a failed statement: by default its text ends with
    # "[parameters: (...)]", the email and the password hash.
    app = create_app(make_settings(db_statement_timeout_ms=300))
    locker = create_async_engine(database, poolclass=NullPool)
    answers: list[httpx.Response] = []

    async def requests(client: httpx.AsyncClient) -> None:
        async with locker.connect() as lock:
            # The INSERT waits for this lock until PostgreSQL cancels it.
            await lock.execute(text("LOCK TABLE users IN SHARE MODE"))
            answers.append(await client.post(USERS, json=signup("slow@example.com")))
            await lock.rollback()

    try:
        lines = await served_logs(app, capfd, requests)
    finally:
        await locker.dispose()
        await delete_all_users(database)
    [response] = answers
    # Cancelled is an outage (retry later), not a bug.
    assert_problem(response, 503)
    written = response.text + json.dumps(lines)
    assert "slow@example.com" not in written
    assert "$argon2" not in written
