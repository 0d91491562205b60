"""Every error status of the contract is RFC 9457 problem+json, never `{"detail": ...}` alone."""

import socket
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from tests.conftest import (
    PASSWORD,
    UserFactory,
    assert_problem,
    bearer,
    delete_all_users,
    log_in,
    make_settings,
    open_client,
    sign_up,
)

from app.main import create_app

pytestmark = pytest.mark.task("problem-details")

USERS = "/api/v1/users"
ME = "/api/v1/users/me"
LIMIT = 1024 * 1024  # MAX_BODY_BYTES's default


async def test_an_unknown_path_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/path", headers={"X-Request-ID": "trace-404"})

    body = assert_problem(response, 404)
    assert body["request_id"] == "trace-404"
    assert body["title"] == "Not Found"


async def test_a_wrong_method_is_a_405_problem_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.put("/health/live")

    assert_problem(response, 405)
    assert response.headers["allow"] == "GET"


async def test_a_405_allows_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    # Three routes share this path, one per method: the Allow header names all of them.
    response = await client.put(f"{USERS}/0b7e3f52-8c0e-4a7e-9a38-9f1c1c2f6a11")

    assert_problem(response, 405)
    assert response.headers["allow"] == "DELETE, GET, PATCH"


async def test_a_host_that_is_not_ours_is_a_400_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/health/live", headers={"Host": "evil.example"}), 400)


async def test_a_refused_cors_preflight_is_a_400_problem(client: httpx.AsyncClient) -> None:
    response = await client.options(
        USERS,
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )

    body = assert_problem(response, 400)
    assert "access-control-allow-origin" not in response.headers
    assert "origin" in body["detail"].lower()


async def test_a_body_over_the_limit_is_a_413_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        USERS, content=b"x" * (LIMIT + 1), headers={"Content-Type": "application/json"}
    )

    assert_problem(response, 413)


async def test_a_streamed_body_over_the_limit_is_a_413_problem(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 65536  # 20 x 64 KiB, no Content-Length: chunked

    response = await client.post(
        USERS, content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert "content-length" not in response.request.headers
    assert_problem(response, 413)


async def test_a_body_that_is_not_json_is_a_422_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        USERS, content=b"{not json", headers={"Content-Type": "application/json"}
    )

    body = assert_problem(response, 422)
    assert body["errors"], body


async def test_a_422_names_the_field_and_never_echoes_the_password(
    client: httpx.AsyncClient,
) -> None:
    password = "short-7"  # seven characters: one too few
    response = await client.post(USERS, json={"email": "ada@example.com", "password": password})

    body = assert_problem(response, 422)
    assert ["body", "password"] in [error["loc"] for error in body["errors"]], body
    for error in body["errors"]:
        # Where, what and why: never the value.
        assert set(error) == {"loc", "msg", "type"}, error
    assert password not in response.text


async def test_a_422_never_echoes_a_refresh_token(client: httpx.AsyncClient) -> None:
    token = "this-is-a-secret-refresh-token-" + "x" * 10_000  # longer than any real one
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": [token]})

    assert_problem(response, 422)
    assert "this-is-a-secret-refresh-token" not in response.text


async def test_a_missing_token_is_a_401_problem_with_the_bare_challenge(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(ME)

    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_bad_token_is_a_401_problem_with_the_invalid_token_challenge(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(ME, headers=bearer("not-a-jwt"))

    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_a_failed_login_is_a_401_problem_with_its_challenge(
    client: httpx.AsyncClient, user: UserFactory
) -> None:
    await user("ada@example.com")

    response = await client.post(
        "/api/v1/auth/token", data={"username": "ada@example.com", "password": "wrong password"}
    )

    body = assert_problem(response, 401)
    assert body["detail"] == "The email or password is not correct."
    assert response.headers["www-authenticate"] == "Bearer"


async def test_an_admin_route_is_a_403_problem_for_a_user(
    client: httpx.AsyncClient, user: UserFactory
) -> None:
    await user("ada@example.com")
    headers = bearer((await log_in(client, "ada@example.com"))["access_token"])

    assert_problem(await client.get(USERS, headers=headers), 403)


async def test_someone_elses_id_is_a_404_problem(
    client: httpx.AsyncClient, user: UserFactory
) -> None:
    await user("ada@example.com")
    headers = bearer((await log_in(client, "ada@example.com"))["access_token"])

    response = await client.get(f"{USERS}/{uuid.uuid4()}", headers=headers)

    assert assert_problem(response, 404)["detail"] == "No user with this id exists."


async def test_a_taken_email_is_a_409_problem(client: httpx.AsyncClient) -> None:
    await sign_up(client, "ada@example.com")

    response = await client.post(USERS, json={"email": "ADA@example.com", "password": PASSWORD})

    body = assert_problem(response, 409)
    assert body["detail"] == "An account with this email address already exists."


async def test_a_login_past_the_limit_is_a_429_problem_with_retry_after(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    app = create_app(make_settings(login_rate_limit="1/minute"))
    form = {"username": "nobody@example.com", "password": "wrong password"}
    async for client in open_client(app, {"sessionmaker": sessionmaker}):
        assert_problem(await client.post("/api/v1/auth/token", data=form), 401)
        response = await client.post("/api/v1/auth/token", data=form)

    assert_problem(response, 429)
    assert int(response.headers["retry-after"]) >= 1


def closed_database_url() -> str:
    """A database URL whose port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/nowhere"


async def test_readiness_with_the_database_down_is_a_503_problem_with_its_checks() -> None:
    app = create_app(make_settings(database_url=closed_database_url()))
    async for client in open_client(app):
        response = await client.get("/health/ready")

    body = assert_problem(response, 503)
    assert body["checks"] == {"database": "unavailable", "redis": "ok"}


async def test_a_sign_up_with_the_database_down_is_a_503_problem_with_retry_after() -> None:
    app = create_app(make_settings(database_url=closed_database_url()))
    async for client in open_client(app):
        response = await client.post(USERS, json={"email": "ada@example.com", "password": PASSWORD})

    body = assert_problem(response, 503)
    assert "database" in body["detail"], body
    assert int(response.headers["retry-after"]) >= 1


async def test_a_sign_up_past_the_statement_timeout_is_a_503_problem(database: str) -> None:
    # A statement PostgreSQL cancels is an outage (retry later), not a bug (500).
    app = create_app(make_settings(db_statement_timeout_ms=300))
    locker = create_async_engine(database, poolclass=NullPool)
    try:
        async for client in open_client(app):
            async with locker.connect() as lock:
                # The INSERT waits for this lock until PostgreSQL cancels it.
                await lock.execute(text("LOCK TABLE users IN SHARE MODE"))
                response = await client.post(
                    USERS, json={"email": "slow@example.com", "password": PASSWORD}
                )
                await lock.rollback()
    finally:
        await locker.dispose()
        await delete_all_users(database)

    assert_problem(response, 503)
    assert "slow@example.com" not in response.text


async def test_no_error_answers_in_fastapis_own_shape(client: httpx.AsyncClient) -> None:
    answers = [
        await client.get("/nowhere"),
        await client.get(ME),
        await client.post(USERS, json={}),
        await client.get(f"{USERS}/not-a-uuid"),
    ]

    for response in answers:
        assert response.status_code >= 400, response.text
        assert response.headers["content-type"] == "application/problem+json", response.text
        assert set(response.json()) != {"detail"}, response.text
