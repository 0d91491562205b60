"""What each expected error says: the detail and errors of its problem+json, not only its status."""

from http import HTTPStatus

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from tests.conftest import HeadersFactory, UserFactory, assert_problem

USERS = "/api/v1/users"
INVALID = "The request is invalid; see errors."


@pytest.mark.parametrize(
    ("method", "path", "status", "detail"),
    [
        ("GET", "/no/such/path", 404, "No resource exists at this path."),
        ("PUT", "/health/live", 405, "This method is not allowed on this path."),
    ],
)
async def test_routing_errors_say_a_sentence_not_the_bare_status_phrase(
    client: httpx.AsyncClient, method: str, path: str, status: int, detail: str
) -> None:
    # Starlette fills these details with the title again ("Not Found"): it tells a client nothing.
    body = assert_problem(await client.request(method, path), status)
    assert body["detail"] == detail


@pytest.fixture
def app_with_a_bare_conflict(app: FastAPI) -> FastAPI:
    async def conflict() -> None:
        raise HTTPException(409)  # no detail: Starlette fills in "Conflict"

    app.add_api_route("/test/bare-conflict", conflict)
    return app


async def test_a_bare_http_exception_gets_the_standard_description_of_its_status(
    app_with_a_bare_conflict: FastAPI, client: httpx.AsyncClient
) -> None:
    # No sentence of ours for 409: RFC 9110's description, still never a missing detail.
    body = assert_problem(await client.get("/test/bare-conflict"), 409)
    assert body["detail"] == HTTPStatus.CONFLICT.description


async def test_an_invalid_body_answers_the_validation_sentence(client: httpx.AsyncClient) -> None:
    r = await client.post(USERS, json={"email": "ada@example.com", "password": "short"})
    body = assert_problem(r, 422)
    assert body["detail"] == INVALID
    assert [error["loc"] for error in body["errors"]] == [["body", "password"]]


async def test_a_cursor_the_service_did_not_issue_answers_422_with_its_own_error(
    client: httpx.AsyncClient, user: UserFactory, auth_headers: HeadersFactory
) -> None:
    # A well-formed string the cursor decoder refuses (not base64 of a JSON list):
    # the error a client can act on by code, in the shape every 422 has.
    headers = await auth_headers(await user(is_admin=True))
    r = await client.get(USERS, params={"cursor": "garbage"}, headers=headers)
    body = assert_problem(r, 422)
    assert body["detail"] == INVALID
    assert body["errors"] == [
        {
            "loc": ["query", "cursor"],
            "msg": "This cursor was not issued by this service.",
            "type": "invalid_cursor",
        }
    ]


async def test_a_taken_email_answers_409_saying_the_account_exists(
    client: httpx.AsyncClient, user: UserFactory
) -> None:
    await user("ada@example.com")
    r = await client.post(USERS, json={"email": "ada@example.com", "password": "long enough pw"})
    body = assert_problem(r, 409)
    assert body["detail"] == "An account with this email address already exists."
