"""Exercise: the access log line names the authenticated caller as user_id, and nobody else."""

import logging

import httpx
import pytest
from tests.conftest import HeadersFactory, UserFactory


def access_lines(caplog: pytest.LogCaptureFixture, route: str) -> list[logging.LogRecord]:
    """The app.access records of one route template, oldest first."""
    return [
        record
        for record in caplog.records
        if record.name == "app.access" and getattr(record, "route", None) == route
    ]


async def test_the_access_line_names_the_authenticated_user(
    client: httpx.AsyncClient,
    user: UserFactory,
    auth_headers: HeadersFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ada, grace = await user(), await user()
    ada_headers, grace_headers = await auth_headers(ada), await auth_headers(grace)
    caplog.set_level(logging.INFO)

    for headers in (ada_headers, {}, grace_headers, {"Authorization": "Bearer not.a.token"}):
        await client.get("/api/v1/users/me", headers=headers)

    lines = access_lines(caplog, "/api/v1/users/me")
    assert [getattr(line, "status", None) for line in lines] == [200, 401, 200, 401], caplog.text
    # The id only: an email in a log line is personal data kept as long as the logs.
    assert [getattr(line, "user_id", "absent") for line in lines] == [
        ada["id"],
        None,
        grace["id"],
        None,
    ], caplog.text
    for line in lines:
        assert ada["email"] not in str(vars(line))
        assert grace["email"] not in str(vars(line))


async def test_an_anonymous_route_after_an_authenticated_one_names_nobody(
    client: httpx.AsyncClient,
    user: UserFactory,
    auth_headers: HeadersFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers = await auth_headers(await user())
    caplog.set_level(logging.INFO)

    await client.get("/api/v1/users/me", headers=headers)
    await client.get("/health/live")

    (authenticated,) = access_lines(caplog, "/api/v1/users/me")
    (anonymous,) = access_lines(caplog, "/health/live")
    assert getattr(authenticated, "user_id", "absent") != "absent", caplog.text
    # One request's caller must not leak into the next request's line.
    assert getattr(anonymous, "user_id", "absent") is None, caplog.text
