"""Two replicas over one PostgreSQL and one Redis: revocation and limits hold across them."""

import secrets

import pytest
from harness.api import PASSWORD, assert_problem, bearer, create_user, login, login_tokens
from harness.launcher import Launcher
from harness.service import Service

LOGIN_LIMIT = 3


@pytest.fixture
async def replicas(launch: Launcher) -> tuple[Service, Service]:
    """Replicas A and B sharing the suite's database and one dedicated Redis."""
    redis_server = await launch.redis()
    # One deployment: the replicas share the signing key (a token from A must verify on B).
    settings = {"LOGIN_RATE_LIMIT": f"{LOGIN_LIMIT}/minute", "SECRET_KEY": secrets.token_hex(40)}
    a = await launch.service("replica-a", redis_url=redis_server.url, extra=settings)
    b = await launch.service("replica-b", redis_url=redis_server.url, extra=settings)
    return a, b


async def test_logout_on_one_replica_is_refused_at_once_on_the_other(
    replicas: tuple[Service, Service],
) -> None:
    a, b = replicas
    async with a.client() as on_a, b.client() as on_b:
        user = await create_user(on_a, "replica-logout")
        tokens = await login_tokens(on_a, user["email"])
        # B has seen (and may have cached) the token before the logout.
        assert (await on_b.get("/api/v1/users/me", headers=bearer(tokens))).status_code == 200
        logout = await on_a.post(
            "/api/v1/auth/logout",
            headers=bearer(tokens),
            json={"refresh_token": tokens["refresh_token"]},
        )
        assert logout.status_code == 204, logout.text
        after = await on_b.get("/api/v1/users/me", headers=bearer(tokens))
    assert_problem(after, 401)
    assert after.headers.get("www-authenticate", "").startswith("Bearer"), after.headers


async def test_login_limit_is_shared_by_both_replicas(replicas: tuple[Service, Service]) -> None:
    a, b = replicas
    async with a.client() as on_a, b.client() as on_b:
        user = await create_user(on_a, "replica-limit")
        answers = []
        # Alternate A, B, A: each replica alone is under the limit, together they reach it.
        for client in (on_a, on_b, on_a)[:LOGIN_LIMIT]:
            answers.append((await login(client, user["email"])).status_code)
        assert answers == [200] * LOGIN_LIMIT, answers
        refused = await on_b.post(
            "/api/v1/auth/token", data={"username": user["email"], "password": PASSWORD}
        )
    assert_problem(refused, 429)
    assert int(refused.headers["retry-after"]) >= 1, refused.headers


async def test_refresh_replay_on_one_replica_revokes_the_family_made_on_the_other(
    replicas: tuple[Service, Service],
) -> None:
    a, b = replicas
    async with a.client() as on_a, b.client() as on_b:
        user = await create_user(on_a, "replica-replay")
        first = await login_tokens(on_a, user["email"])
        rotated = await on_a.post(
            "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert rotated.status_code == 200, rotated.text
        second = rotated.json()

        replay = await on_b.post(
            "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert_problem(replay, 401)
        # The whole family dies, the newer tokens included, on both replicas.
        newer_refresh = await on_b.post(
            "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
        )
        assert_problem(newer_refresh, 401)
        for client in (on_a, on_b):
            me = await client.get("/api/v1/users/me", headers=bearer(second))
            assert_problem(me, 401)
