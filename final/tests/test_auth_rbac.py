"""Who may do what: the authorisation matrix from one table, and the last-admin guard."""

from typing import Any

import httpx
import pytest
from tests.conftest import HeadersFactory, TokenFactory, UserFactory, assert_problem, bearer

# Actors: nobody (no token), the target user themself, another plain user, an admin.
ACTORS = ("anonymous", "self", "other", "admin")

# route, body, expected status per actor (in ACTORS order). {target} is a plain
# user's id, {session} one of the target's sessions. Object-level refusals are
# 404 (do not confirm the id exists); route-level role refusals are 403.
MATRIX: list[tuple[str, dict[str, Any] | None, tuple[int, int, int, int]]] = [
    ("GET /api/v1/users/me", None, (401, 200, 200, 200)),
    ("PATCH /api/v1/users/me", {"full_name": "New Name"}, (401, 200, 200, 200)),
    ("GET /api/v1/users/{target}", None, (401, 200, 404, 200)),
    ("GET /api/v1/users", None, (401, 403, 403, 200)),
    ("PATCH /api/v1/users/{target}", {"full_name": "Renamed"}, (401, 403, 403, 200)),
    ("DELETE /api/v1/users/{target}", None, (401, 204, 404, 204)),
    ("GET /api/v1/auth/sessions", None, (401, 200, 200, 200)),
    ("POST /api/v1/auth/logout", None, (401, 204, 204, 204)),
    ("DELETE /api/v1/auth/sessions/{session}", None, (401, 204, 404, 404)),
]
CASES = [
    pytest.param(route, body, actor, statuses[n], id=f"{route} as {actor}")
    for route, body, statuses in MATRIX
    for n, actor in enumerate(ACTORS)
]


@pytest.mark.parametrize(("route", "body", "actor", "expected"), CASES)
async def test_authorisation_matrix(
    client: httpx.AsyncClient,
    user: UserFactory,
    token_pair: TokenFactory,
    route: str,
    body: dict[str, Any] | None,
    actor: str,
    expected: int,
) -> None:
    target = await user()
    target_tokens = await token_pair(target)
    # A second session of the target's, so "self" deleting it is not deleting its own.
    target_session = (await token_pair(target)).refresh_token.split(".")[0]
    callers = {
        "anonymous": {},
        "self": bearer(target_tokens.access_token),
        "other": bearer((await token_pair(await user())).access_token),
        "admin": bearer((await token_pair(await user(is_admin=True))).access_token),
    }
    method, path = route.split(" ")
    url = path.format(target=target.id, session=target_session)
    r = await client.request(method, url, json=body, headers=callers[actor])
    if expected >= 400:
        assert_problem(r, expected)
    else:
        assert r.status_code == expected, r.text


async def test_a_non_admin_on_an_admin_route_is_told_only_administrators_may(
    client: httpx.AsyncClient, user: UserFactory, auth_headers: HeadersFactory
) -> None:
    r = await client.get("/api/v1/users", headers=await auth_headers(await user()))
    body = assert_problem(r, 403)
    # The route's existence is no secret (403, not 404): the caller is told why.
    assert body["detail"] == "Only administrators may do this."


async def test_admin_cannot_remove_their_own_admin_flag_as_the_last_admin(
    client: httpx.AsyncClient, user: UserFactory, auth_headers: HeadersFactory
) -> None:
    admin = await user(is_admin=True)
    headers = await auth_headers(admin)
    for change in ({"is_admin": False}, {"is_active": False}):
        r = await client.patch(f"/api/v1/users/{admin.id}", json=change, headers=headers)
        body = assert_problem(r, 409)
        assert "last active administrator" in body["detail"]
    assert_problem(await client.delete(f"/api/v1/users/{admin.id}", headers=headers), 409)
    me = await client.get("/api/v1/users/me", headers=headers)
    assert me.json()["is_admin"] is True


async def test_admin_can_step_down_when_another_active_admin_remains(
    client: httpx.AsyncClient, user: UserFactory, auth_headers: HeadersFactory
) -> None:
    admin = await user(is_admin=True)
    await user(is_admin=True)
    r = await client.patch(
        f"/api/v1/users/{admin.id}", json={"is_admin": False}, headers=await auth_headers(admin)
    )
    assert r.status_code == 200, r.text
    assert r.json()["is_admin"] is False


async def test_an_inactive_admin_does_not_count_as_the_remaining_admin(
    client: httpx.AsyncClient, user: UserFactory, auth_headers: HeadersFactory
) -> None:
    admin = await user(is_admin=True)
    await user(is_admin=True, is_active=False)
    r = await client.patch(
        f"/api/v1/users/{admin.id}", json={"is_admin": False}, headers=await auth_headers(admin)
    )
    assert_problem(r, 409)


async def test_admin_promotion_takes_effect_on_the_next_request(
    client: httpx.AsyncClient, user: UserFactory, auth_headers: HeadersFactory
) -> None:
    admin, plain = await user(is_admin=True), await user()
    plain_headers = await auth_headers(plain)
    assert_problem(await client.get("/api/v1/users", headers=plain_headers), 403)
    r = await client.patch(
        f"/api/v1/users/{plain.id}", json={"is_admin": True}, headers=await auth_headers(admin)
    )
    assert r.status_code == 200, r.text
    assert (await client.get("/api/v1/users", headers=plain_headers)).status_code == 200


@pytest.mark.parametrize(("is_admin", "expected"), [(False, 403), (True, 200)])
async def test_the_role_holds_once_the_session_marker_answers(
    client: httpx.AsyncClient,
    user: UserFactory,
    auth_headers: HeadersFactory,
    is_admin: bool,
    expected: int,
) -> None:
    headers = await auth_headers(await user(is_admin=is_admin))
    # The first request checks the session in PostgreSQL and writes its marker;
    # the second is settled by the marker alone, the role included.
    assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 200
    r = await client.get("/api/v1/users", headers=headers)
    if expected >= 400:
        assert_problem(r, expected)
    else:
        assert r.status_code == expected, r.text
    metrics = (await client.get("/metrics")).text
    assert 'auth_checks_total{source="redis"} 1.0' in metrics
    assert 'auth_checks_total{source="database"} 1.0' in metrics
