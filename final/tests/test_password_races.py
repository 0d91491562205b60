"""Logins and password changes racing: nothing based on a password counts once it has changed."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any, Literal

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.conftest import (
    PASSWORD,
    TokenFactory,
    UserFactory,
    assert_problem,
    bearer,
    make_settings,
    open_client,
)
from tests.lock_holder import delete_users, lock_holder

from app.config import Settings
from app.main import create_app
from app.security import PasswordHasher

# Every test starts from a flushed Redis: no login-limit count leaks in.
pytestmark = pytest.mark.usefixtures("redis")

TOKEN = "/api/v1/auth/token"
ME = "/api/v1/users/me"
NEW_PASSWORD = "a brand new passphrase"


class PausedHasher(PasswordHasher):
    """The app's hasher, except that the first check through one method pauses once it is done.

    The login checks with verify_and_update, a password change with verify: pausing
    one of them holds that request between its password check and its writes.
    """

    def __init__(self, settings: Settings, pause: Literal["verify", "verify_and_update"]) -> None:
        super().__init__(settings)
        self._pause = pause
        self.paused = asyncio.Event()
        self.resume = asyncio.Event()

    async def _checked(self, method: str) -> None:
        if method == self._pause and not self.paused.is_set():
            self.paused.set()
            await self.resume.wait()

    async def verify(self, password: str, password_hash: str) -> bool:
        """Check a password, then pause if this is the paused method's first call."""
        valid = await super().verify(password, password_hash)
        await self._checked("verify")
        return valid

    async def verify_and_update(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        """Check a password (and rehash), then pause if this is the paused method's first call."""
        result = await super().verify_and_update(password, password_hash)
        await self._checked("verify_and_update")
        return result


@asynccontextmanager
async def running(
    hasher: PasswordHasher, sessionmaker: async_sessionmaker[AsyncSession] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh app that hashes with this hasher (on the test transaction, if given)."""
    overrides: dict[str, Any] = {"password_hasher": hasher}
    if sessionmaker is not None:
        overrides["sessionmaker"] = sessionmaker
    async with aclosing(open_client(create_app(make_settings()), overrides)) as clients:
        async for client in clients:
            yield client


async def log_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(TOKEN, data={"username": email, "password": password})


async def change_password(
    client: httpx.AsyncClient, access_token: str, new_password: str = NEW_PASSWORD
) -> httpx.Response:
    return await client.patch(
        ME,
        headers=bearer(access_token),
        json={"password": new_password, "current_password": PASSWORD},
    )


async def test_a_login_that_verified_the_old_password_before_a_change_gets_401(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    user: UserFactory,
    token_pair: TokenFactory,
) -> None:
    ada = await user("ada@example.com")
    device = await token_pair(ada)
    hasher = PausedHasher(settings, pause="verify_and_update")
    async with running(hasher, sessionmaker) as client:
        login = asyncio.create_task(log_in(client, ada.email, PASSWORD))
        await hasher.paused.wait()  # the old password verified; nothing written yet
        change = await change_password(client, device.access_token)
        assert change.status_code == 200, change.text
        hasher.resume.set()
        body = assert_problem(await login, 401)
        sessions = await client.get("/api/v1/auth/sessions", headers=bearer(device.access_token))

    assert body["detail"] == "The email or password is not correct."
    # No session was started with the old password: only the device that changed it has one.
    assert [item["current"] for item in sessions.json()] == [True], sessions.text


async def test_a_login_rehashing_the_old_password_cannot_undo_a_password_change(
    sessionmaker: async_sessionmaker[AsyncSession], user: UserFactory, token_pair: TokenFactory
) -> None:
    ada = await user("ada@example.com")  # hashed with the suite's cost, t=1
    device = await token_pair(ada)
    # A costlier setting: the login's check also rehashes the (old) password it verified.
    hasher = PausedHasher(make_settings(argon2_time_cost=2), pause="verify_and_update")
    async with running(hasher, sessionmaker) as client:
        login = asyncio.create_task(log_in(client, ada.email, PASSWORD))
        await hasher.paused.wait()
        change = await change_password(client, device.access_token)
        assert change.status_code == 200, change.text
        hasher.resume.set()
        assert_problem(await login, 401)
        with_new = await log_in(client, ada.email, NEW_PASSWORD)
        with_old = await log_in(client, ada.email, PASSWORD)

    assert with_new.status_code == 200, with_new.text
    assert_problem(with_old, 401)


async def test_of_two_racing_password_changes_the_one_that_verified_a_stale_hash_gets_403(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    user: UserFactory,
    token_pair: TokenFactory,
) -> None:
    ada = await user("ada@example.com")
    phone, laptop = await token_pair(ada), await token_pair(ada)
    hasher = PausedHasher(settings, pause="verify")
    async with running(hasher, sessionmaker) as client:
        phones_change = change_password(client, phone.access_token, "the phone's choice")
        slow = asyncio.create_task(phones_change)
        await hasher.paused.wait()  # the phone's current password verified; nothing written yet
        fast = await change_password(client, laptop.access_token, "the laptop's choice")
        assert fast.status_code == 200, fast.text
        hasher.resume.set()
        body = assert_problem(await slow, 403)
        laptops = await log_in(client, ada.email, "the laptop's choice")
        phones = await log_in(client, ada.email, "the phone's choice")
        laptop_still_in = await client.get(ME, headers=bearer(laptop.access_token))

    assert body["detail"] == "The current password is not correct."
    assert laptops.status_code == 200, laptops.text
    assert_problem(phones, 401)
    # The change that answered 200 kept its own session.
    assert laptop_still_in.status_code == 200, laptop_still_in.text


# --- on the real pool: separate connections, row locks, committed rows --------------


@pytest.fixture
async def ada_email(database: str) -> AsyncIterator[str]:
    """A fresh email for a user the test signs up (committed); deleted after the test."""
    email = f"race-{uuid.uuid4().hex[:12]}@example.com"
    yield email
    await delete_users(database, email)


async def test_a_login_waits_for_a_password_change_under_way_and_then_gets_401(
    app: FastAPI, database: str, settings: Settings, ada_email: str
) -> None:
    hasher = PausedHasher(settings, pause="verify_and_update")
    new_hash = await PasswordHasher(settings).hash(NEW_PASSWORD)
    async for client in open_client(app, {"password_hasher": hasher}):
        signup = await client.post("/api/v1/users", json={"email": ada_email, "password": PASSWORD})
        assert signup.status_code == 201, signup.text
        login = asyncio.create_task(log_in(client, ada_email, PASSWORD))
        await hasher.paused.wait()
        async with lock_holder(database) as change:
            # A password change between its UPDATE and its COMMIT, on another connection.
            await change.execute(
                "UPDATE users SET password_hash = :hash WHERE email = :email",
                hash=new_hash,
                email=ada_email,
            )
            hasher.resume.set()
            await change.wait_until("the change's row lock", lambda waiters: bool(waiters), login)
            await change.commit()
        assert_problem(await login, 401)


async def test_a_password_change_waits_for_a_login_under_way_and_then_ends_its_session(
    app: FastAPI, database: str, ada_email: str
) -> None:
    async for client in open_client(app):
        signup = await client.post("/api/v1/users", json={"email": ada_email, "password": PASSWORD})
        assert signup.status_code == 201, signup.text
        device = await log_in(client, ada_email, PASSWORD)
        assert device.status_code == 200, device.text
        async with lock_holder(database) as holder:
            # Stops the next login at its session INSERT, after it has checked the password.
            await holder.execute("LOCK TABLE auth_sessions IN SHARE MODE")
            login = asyncio.create_task(log_in(client, ada_email, PASSWORD))
            await holder.wait_until("the login's INSERT", lambda waiters: bool(waiters), login)
            change = asyncio.create_task(change_password(client, device.json()["access_token"]))
            # The change must queue behind the login's lock on the user's row, not
            # behind the table lock: it then runs after the login and sees its session.
            await holder.wait_until(
                "the change to queue behind the login",
                lambda waiters: any(holder.pid not in blockers for blockers in waiters.values()),
                login,
                change,
            )
        late_login, changed = await login, await change
        assert late_login.status_code == 200, late_login.text
        assert changed.status_code == 200, changed.text
        # The login came first, so the change ended its session like every other one.
        late_token = late_login.json()["access_token"]
        assert_problem(await client.get(ME, headers=bearer(late_token)), 401)
        refresh = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": late_login.json()["refresh_token"]}
        )
        assert_problem(refresh, 401)
