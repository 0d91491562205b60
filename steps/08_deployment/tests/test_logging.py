"""Log lines as an operator reads them on stderr: JSON, one per request, with its id, no secrets."""

import json
import re
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.conftest import (
    PASSWORD,
    delete_all_users,
    make_settings,
    open_client,
    read_captured,
    served_logs,
    sign_up,
)

from app.main import create_app

pytestmark = pytest.mark.task("logging")

USERS = "/api/v1/users"
USER_PATH = "/api/v1/users/0b7e3f52-8c0e-4a7e-9a38-9f1c1c2f6a11"
SECRET_KEY = "a-test-secret-key-that-must-never-reach-a-log-line"


def access_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The one-per-request lines: those that carry a status and a route."""
    return [line for line in lines if "status" in line and "route" in line]


async def test_each_request_writes_one_json_access_line(
    sessionmaker: async_sessionmaker[AsyncSession], capfd: pytest.CaptureFixture[str]
) -> None:
    async def requests(client: httpx.AsyncClient) -> None:
        response = await client.get(USER_PATH, headers={"X-Request-ID": "log-1"})
        assert response.status_code == 401, response.text

    app = create_app(make_settings())
    lines = await served_logs(app, capfd, requests, {"sessionmaker": sessionmaker})

    [line] = access_lines(lines)
    assert line["method"] == "GET"
    # The route template, never the path: ids stay out of the logs and labels.
    assert line["route"] == "/api/v1/users/{user_id}"
    assert line["status"] == 401
    assert line["request_id"] == "log-1"
    assert isinstance(line["duration_ms"], int | float)
    assert line["client"] == "127.0.0.1"
    assert "0b7e3f52" not in json.dumps(lines)


async def test_every_line_written_while_serving_carries_the_request_id(
    sessionmaker: async_sessionmaker[AsyncSession], capfd: pytest.CaptureFixture[str]
) -> None:
    async def requests(client: httpx.AsyncClient) -> None:
        response = await client.get("/health/ready", headers={"X-Request-ID": "ready-1"})
        assert response.status_code == 200, response.text

    # SLOW_QUERY_MS=0: every statement is "slow", so the readiness check's query logs a line.
    app = create_app(make_settings(slow_query_ms=0))
    lines = await served_logs(app, capfd, requests)

    assert len(lines) >= 2, lines  # the statement's line and the access line
    assert {line["request_id"] for line in lines} == {"ready-1"}, lines


async def test_a_slow_statement_is_logged_with_its_duration_and_no_parameters(
    capfd: pytest.CaptureFixture[str], database: str
) -> None:
    email = "slow-statement@example.com"

    async def requests(client: httpx.AsyncClient) -> None:
        await sign_up(client, email, PASSWORD)

    # The app's own pool (not the test's transaction): its statements are the ones it times.
    app = create_app(make_settings(slow_query_ms=0))
    try:
        lines = await served_logs(app, capfd, requests)
    finally:
        await delete_all_users(database)

    inserts = [line for line in lines if "INSERT INTO users" in str(line.get("statement"))]
    assert len(inserts) == 1, lines
    assert isinstance(inserts[0]["duration_ms"], int | float)
    # The statement's text only: its parameters are the email and the password hash.
    assert email not in json.dumps(lines)
    assert "$argon2" not in json.dumps(lines)


async def test_statements_below_the_threshold_are_not_logged(
    capfd: pytest.CaptureFixture[str],
) -> None:
    async def requests(client: httpx.AsyncClient) -> None:
        assert (await client.get("/health/ready")).status_code == 200

    app = create_app(make_settings(slow_query_ms=60_000))
    lines = await served_logs(app, capfd, requests)

    assert [line for line in lines if line.get("statement")] == [], lines
    assert len(access_lines(lines)) == 1, lines


async def test_sign_up_login_refresh_and_a_failed_login_log_no_secret(
    capfd: pytest.CaptureFixture[str], database: str
) -> None:
    email = "ada@example.com"
    seen: dict[str, str] = {}

    async def requests(client: httpx.AsyncClient) -> None:
        await sign_up(client, email, PASSWORD)
        login = await client.post(
            "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        pair = login.json()
        refreshed = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        failed = await client.post(
            "/api/v1/auth/token", data={"username": email, "password": "wrong guess here"}
        )
        assert failed.status_code == 401, failed.text
        # A 422 whose input is a password: the password stays out of the log too.
        short = await client.post(USERS, json={"email": "bo@example.com", "password": "tiny-pw"})
        assert short.status_code == 422, short.text
        seen.update(
            access=pair["access_token"],
            refresh=pair["refresh_token"],
            new_access=refreshed.json()["access_token"],
            new_refresh=refreshed.json()["refresh_token"],
        )

    # Every statement logged too, on the app's own pool: the most lines these requests can write.
    app = create_app(make_settings(slow_query_ms=0, secret_key=SECRET_KEY))
    try:
        lines = await served_logs(app, capfd, requests)
    finally:
        await delete_all_users(database)

    assert len(access_lines(lines)) == 5, lines
    written = json.dumps(lines)
    for secret in (PASSWORD, "wrong guess here", "tiny-pw", SECRET_KEY, *seen.values()):
        assert secret not in written
    # Nor any piece of a token (its signature, a refresh secret), nor a hash.
    for token in seen.values():
        for part in re.split(r"[.]", token):
            if len(part) >= 16:
                assert part not in written
    assert "$argon2" not in written


async def test_the_console_format_is_one_readable_line_per_record(
    capfd: pytest.CaptureFixture[str],
) -> None:
    app = create_app(make_settings(log_format="console"))
    async for client in open_client(app):
        response = await client.get("/health/live", headers={"X-Request-ID": "console-1"})
        assert response.status_code == 200, response.text
    lines = [line for line in (await read_captured(capfd)).err.splitlines() if "console-1" in line]

    [line] = lines
    assert not line.startswith("{"), line
    assert "/health/live" in line
    assert "200" in line
