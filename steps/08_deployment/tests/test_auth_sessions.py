"""Sessions: refresh rotation with reuse detection, and every way a session ends at once."""

import asyncio
import secrets
import uuid
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from tests.conftest import (
    PASSWORD,
    LoginFactory,
    UserFactory,
    bearer,
    delete_all_users,
    log_in,
    sign_up,
)

pytestmark = pytest.mark.task("sessions")

AUTH = "/api/v1/auth"
ME = "/api/v1/users/me"


async def _refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post(f"{AUTH}/refresh", json={"refresh_token": refresh_token})


async def _rotate(client: httpx.AsyncClient, refresh_token: str, times: int) -> dict[str, Any]:
    """Refresh `times` times in a row, each with the token the last one returned."""
    pair: dict[str, Any] = {"refresh_token": refresh_token}
    for _ in range(times):
        r = await _refresh(client, pair["refresh_token"])
        assert r.status_code == 200, r.text
        pair = r.json()
    return pair


def new_refresh_secret() -> str:
    """A secret of the shape the service issues (256 random bits), but never issued."""
    return secrets.token_urlsafe(32)


def assert_problem(response: httpx.Response, status: int) -> None:
    """The status, with a sentence for a detail; a 401 with its Bearer challenge."""
    assert response.status_code == status, response.text
    assert response.json()["detail"], response.text
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer"), response.headers


def _session_id(access_token: str) -> str:
    # The session id is no secret: every access token carries it, readable by anyone.
    return str(jwt.decode(access_token, options={"verify_signature": False})["sid"])


async def _is_accepted(client: httpx.AsyncClient, access_token: str) -> bool:
    r = await client.get(ME, headers=bearer(access_token))
    assert r.status_code in (200, 401), r.text
    return r.status_code == 200


# --- rotation and reuse detection ---------------------------------------------------


async def test_refresh_returns_a_new_pair_and_spends_the_old_refresh_token(
    client: httpx.AsyncClient, user: UserFactory, tokens: LoginFactory
) -> None:
    first = await tokens(await user())
    r = await _refresh(client, first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["token_type"] == "bearer"
    # Same session: the session id half stays, the secret changes.
    assert second["refresh_token"].split(".")[0] == first["refresh_token"].split(".")[0]
    assert await _is_accepted(client, second["access_token"])


async def test_replaying_a_spent_refresh_token_returns_401_and_revokes_the_family(
    client: httpx.AsyncClient, user: UserFactory, tokens: LoginFactory
) -> None:
    first = await tokens(await user())
    second = (await _refresh(client, first["refresh_token"])).json()
    replay = await _refresh(client, first["refresh_token"])
    assert_problem(replay, 401)
    # The newest refresh token and every access token of the session are dead too.
    assert_problem(await _refresh(client, second["refresh_token"]), 401)
    assert not await _is_accepted(client, second["access_token"])
    assert not await _is_accepted(client, first["access_token"])


async def test_replay_revokes_only_that_session_not_the_users_others(
    client: httpx.AsyncClient, user: UserFactory, tokens: LoginFactory
) -> None:
    owner = await user()
    stolen, other_device = await tokens(owner), await tokens(owner)
    await _refresh(client, stolen["refresh_token"])
    await _refresh(client, stolen["refresh_token"])
    assert await _is_accepted(client, other_device["access_token"])


async def test_a_secret_that_was_never_valid_returns_401_and_leaves_the_session_alive(
    client: httpx.AsyncClient, user: UserFactory, tokens: LoginFactory
) -> None:
    first = await tokens(await user())
    session_id = _session_id(first["access_token"])
    for guess in ("junk", new_refresh_secret()):
        assert_problem(await _refresh(client, f"{session_id}.{guess}"), 401)
    assert await _is_accepted(client, first["access_token"])
    second = await _refresh(client, first["refresh_token"])
    assert second.status_code == 200, second.text
    # Once rotated too: only a secret that was valid once counts as a replay.
    assert_problem(await _refresh(client, f"{session_id}.{new_refresh_secret()}"), 401)
    assert await _is_accepted(client, second.json()["access_token"])
    assert (await _refresh(client, second.json()["refresh_token"])).status_code == 200


@pytest.mark.parametrize("rotations_ago", [2, 4])
async def test_replaying_a_token_spent_several_rotations_ago_revokes_the_session(
    client: httpx.AsyncClient, user: UserFactory, tokens: LoginFactory, rotations_ago: int
) -> None:
    stolen = await tokens(await user())
    # The thief refreshes with the stolen token, and again, before its owner does.
    thiefs = await _rotate(client, stolen["refresh_token"], rotations_ago)
    replay = await _refresh(client, stolen["refresh_token"])
    assert_problem(replay, 401)
    # The owner's failed refresh ended the thief's tokens too.
    assert_problem(await _refresh(client, thiefs["refresh_token"]), 401)
    assert not await _is_accepted(client, thiefs["access_token"])


async def test_a_never_valid_secret_after_several_rotations_leaves_the_session_working(
    client: httpx.AsyncClient, user: UserFactory, tokens: LoginFactory
) -> None:
    owner = await user()
    first, other_device = await tokens(owner), await tokens(owner)
    session_id = _session_id(first["access_token"])
    newest = await _rotate(client, first["refresh_token"], 3)
    other_spent_secret = other_device["refresh_token"].split(".")[1]
    await _rotate(client, other_device["refresh_token"], 1)
    # Never valid for this session: made up, or another session's (spent) secret.
    for guess in ("junk", new_refresh_secret(), other_spent_secret):
        assert_problem(await _refresh(client, f"{session_id}.{guess}"), 401)
    assert await _is_accepted(client, newest["access_token"])
    assert (await _refresh(client, newest["refresh_token"])).status_code == 200


async def test_spent_tokens_are_kept_as_hashes_only_and_go_with_their_session(
    client: httpx.AsyncClient, connection: AsyncConnection, user: UserFactory, tokens: LoginFactory
) -> None:
    owner = await user()
    first = await tokens(owner)
    second = await _rotate(client, first["refresh_token"], 1)
    third = await _rotate(client, second["refresh_token"], 1)
    spent = text("SELECT token_hash FROM spent_refresh_tokens WHERE session_id = :id")
    session = {"id": _session_id(first["access_token"])}
    stored = (await connection.scalars(spent, session)).all()
    # One row per rotation, and no secret that was ever issued appears in one.
    assert len(stored) == 2, stored
    issued = [first["refresh_token"], second["refresh_token"], third["refresh_token"]]
    issued_secrets = [token.split(".", 1)[1] for token in issued]
    assert not [row for row in stored for secret in issued_secrets if secret in row], stored
    owner_headers = bearer(third["access_token"])
    deleted = await client.delete(f"/api/v1/users/{owner['id']}", headers=owner_headers)
    assert deleted.status_code == 204, deleted.text
    # Deleting the user deleted the session, and the session its spent hashes.
    assert (await connection.scalars(spent, session)).all() == []


async def test_refresh_with_forged_or_malformed_token_returns_401(
    client: httpx.AsyncClient,
) -> None:
    for token in ["nonsense", f"{uuid.uuid4()}.secret", "x.y", ".", f"{uuid.uuid4()}."]:
        assert_problem(await _refresh(client, token), 401)


async def test_refresh_of_a_deactivated_users_session_returns_401(
    client: httpx.AsyncClient, user: UserFactory, tokens: LoginFactory
) -> None:
    admin, target = await user(is_admin=True), await user()
    pair = await tokens(target)
    admin_headers = bearer((await tokens(admin))["access_token"])
    r = await client.patch(
        f"/api/v1/users/{target['id']}", json={"is_active": False}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert_problem(await _refresh(client, pair["refresh_token"]), 401)


async def test_an_expired_session_is_refused_for_access_and_for_refresh(
    client: httpx.AsyncClient, connection: AsyncConnection, user: UserFactory, tokens: LoginFactory
) -> None:
    pair = await tokens(await user())
    # The access token itself is still valid: only the session behind it has ended.
    await connection.execute(
        text("UPDATE auth_sessions SET expires_at = now() - interval '1 second' WHERE id = :id"),
        {"id": _session_id(pair["access_token"])},
    )

    assert not await _is_accepted(client, pair["access_token"])
    assert_problem(await _refresh(client, pair["refresh_token"]), 401)


async def test_ten_concurrent_refreshes_with_one_token_give_one_pair_and_end_the_session(
    committing_client: httpx.AsyncClient, database: str
) -> None:
    """On the app's real pool: ten connections, ten transactions, committed rows."""
    client = committing_client
    try:
        await sign_up(client, "racer@example.com")
        token = (await log_in(client, "racer@example.com"))["refresh_token"]

        responses = await asyncio.gather(*(_refresh(client, token) for _ in range(10)))

        winners = [r for r in responses if r.status_code == 200]
        assert len(winners) == 1, [r.text for r in responses]
        for loser in responses:
            if loser is not winners[0]:
                assert_problem(loser, 401)
        # Each loser presented a token spent under its nose: a replay, which ends
        # the session, the winner's new pair included.
        pair = winners[0].json()
        assert_problem(await _refresh(client, pair["refresh_token"]), 401)
        assert not await _is_accepted(client, pair["access_token"])
    finally:
        await delete_all_users(database)


# --- revocation: the next request already fails -------------------------------------


async def test_after_logout_the_same_access_token_returns_401(
    client: httpx.AsyncClient, user: UserFactory, tokens: LoginFactory
) -> None:
    pair = await tokens(await user())
    r = await client.post(
        f"{AUTH}/logout",
        headers=bearer(pair["access_token"]),
        json={"refresh_token": pair["refresh_token"]},
    )
    assert r.status_code == 204, r.text
    assert not await _is_accepted(client, pair["access_token"])
    assert_problem(await _refresh(client, pair["refresh_token"]), 401)


async def test_logout_without_a_body_ends_the_session(
    client: httpx.AsyncClient, user: UserFactory, tokens: LoginFactory
) -> None:
    pair = await tokens(await user())
    r = await client.post(f"{AUTH}/logout", headers=bearer(pair["access_token"]))
    assert r.status_code == 204, r.text
    assert not await _is_accepted(client, pair["access_token"])


async def test_logout_without_a_token_returns_401(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post(f"{AUTH}/logout"), 401)


async def test_password_change_ends_other_sessions_and_keeps_the_current_one(
    client: httpx.AsyncClient, user: UserFactory, tokens: LoginFactory
) -> None:
    owner = await user()
    current, other = await tokens(owner), await tokens(owner)
    r = await client.patch(
        ME,
        headers=bearer(current["access_token"]),
        json={"password": "a brand new passphrase", "current_password": PASSWORD},
    )
    assert r.status_code == 200, r.text
    assert await _is_accepted(client, current["access_token"])
    assert not await _is_accepted(client, other["access_token"])
    assert_problem(await _refresh(client, other["refresh_token"]), 401)
    login = await client.post(
        f"{AUTH}/token", data={"username": owner["email"], "password": "a brand new passphrase"}
    )
    assert login.status_code == 200, login.text


async def test_password_change_with_wrong_current_password_changes_nothing(
    client: httpx.AsyncClient, user: UserFactory, tokens: LoginFactory
) -> None:
    owner = await user()
    current, other = await tokens(owner), await tokens(owner)
    r = await client.patch(
        ME,
        headers=bearer(current["access_token"]),
        json={"password": "a brand new passphrase", "current_password": "wrong guess!"},
    )
    assert_problem(r, 403)
    assert await _is_accepted(client, other["access_token"])


async def test_deactivation_ends_every_session_of_the_user(
    client: httpx.AsyncClient, user: UserFactory, tokens: LoginFactory
) -> None:
    admin, target = await user(is_admin=True), await user()
    sessions = [await tokens(target), await tokens(target)]
    admin_headers = bearer((await tokens(admin))["access_token"])
    r = await client.patch(
        f"/api/v1/users/{target['id']}", json={"is_active": False}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    for pair in sessions:
        assert not await _is_accepted(client, pair["access_token"])
    # Reactivating does not bring the old sessions back: they were revoked, not hidden.
    r = await client.patch(
        f"/api/v1/users/{target['id']}", json={"is_active": True}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert not await _is_accepted(client, sessions[0]["access_token"])


async def test_deletion_by_an_admin_ends_every_session_of_the_user(
    client: httpx.AsyncClient, user: UserFactory, tokens: LoginFactory
) -> None:
    admin, target = await user(is_admin=True), await user()
    pair = await tokens(target)
    admin_headers = bearer((await tokens(admin))["access_token"])
    r = await client.delete(f"/api/v1/users/{target['id']}", headers=admin_headers)
    assert r.status_code == 204, r.text
    assert not await _is_accepted(client, pair["access_token"])
    assert_problem(await _refresh(client, pair["refresh_token"]), 401)


# --- listing and ending one's own sessions ------------------------------------------


async def test_list_sessions_shows_the_callers_live_sessions_and_marks_the_current(
    client: httpx.AsyncClient, user: UserFactory, tokens: LoginFactory
) -> None:
    owner, stranger = await user(), await user()
    pairs = [await tokens(owner) for _ in range(3)]
    await tokens(stranger)
    await client.post(f"{AUTH}/logout", headers=bearer(pairs[2]["access_token"]))
    r = await client.get(f"{AUTH}/sessions", headers=bearer(pairs[0]["access_token"]))
    assert r.status_code == 200, r.text
    listed = {item["id"]: item for item in r.json()}
    session_ids = [p["refresh_token"].split(".")[0] for p in pairs]
    assert set(listed) == set(session_ids[:2])
    assert listed[session_ids[0]]["current"] is True
    assert listed[session_ids[1]]["current"] is False
    assert set(listed[session_ids[0]]) == {
        "id",
        "created_at",
        "last_used_at",
        "expires_at",
        "user_agent",
        "ip",
        "current",
    }


async def test_delete_own_session_ends_it_at_once(
    client: httpx.AsyncClient, user: UserFactory, tokens: LoginFactory
) -> None:
    owner = await user()
    here, lost_phone = await tokens(owner), await tokens(owner)
    lost_id = lost_phone["refresh_token"].split(".")[0]
    r = await client.delete(f"{AUTH}/sessions/{lost_id}", headers=bearer(here["access_token"]))
    assert r.status_code == 204, r.text
    assert not await _is_accepted(client, lost_phone["access_token"])
    assert await _is_accepted(client, here["access_token"])
    # Already ended: no live session of yours has this id any more.
    r = await client.delete(f"{AUTH}/sessions/{lost_id}", headers=bearer(here["access_token"]))
    assert_problem(r, 404)


async def test_delete_another_users_session_returns_404_and_leaves_it_alive(
    client: httpx.AsyncClient, user: UserFactory, tokens: LoginFactory
) -> None:
    owner, victim = await user(), await user()
    mine, theirs = await tokens(owner), await tokens(victim)
    their_id = theirs["refresh_token"].split(".")[0]
    r = await client.delete(f"{AUTH}/sessions/{their_id}", headers=bearer(mine["access_token"]))
    assert_problem(r, 404)
    assert await _is_accepted(client, theirs["access_token"])


async def test_delete_session_with_invalid_id_returns_422(
    client: httpx.AsyncClient, user: UserFactory, tokens: LoginFactory
) -> None:
    pair = await tokens(await user())
    r = await client.delete(f"{AUTH}/sessions/not-a-uuid", headers=bearer(pair["access_token"]))
    assert_problem(r, 422)
