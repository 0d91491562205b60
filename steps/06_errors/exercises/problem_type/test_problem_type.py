"""Exercise: a taken email has a problem type and title of its own; the rest stay about:blank."""

from http import HTTPStatus
from urllib.parse import urlsplit

import httpx
from tests.conftest import PASSWORD, UserFactory

SIGN_UP = "/api/v1/users"


async def test_a_taken_email_has_its_own_problem_type(
    client: httpx.AsyncClient, user: UserFactory
) -> None:
    taken = await user()

    response = await client.post(SIGN_UP, json={"email": taken["email"], "password": PASSWORD})

    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    # An absolute URI that names this kind of problem (RFC 9457, section 3.1.1).
    uri = urlsplit(problem["type"])
    assert uri.scheme == "https", problem
    assert uri.netloc, problem
    assert uri.path.strip("/"), problem
    # With a type of its own, the title summarises the type, not the status.
    assert problem["title"], problem
    assert problem["title"] != "Conflict", problem
    assert problem["status"] == 409
    assert problem["detail"] == "An account with this email address already exists."
    assert problem["instance"] == SIGN_UP
    assert problem["request_id"] == response.headers["x-request-id"]


async def test_the_type_is_the_same_for_every_taken_email(
    client: httpx.AsyncClient, user: UserFactory
) -> None:
    first, second = await user(), await user()

    answers = [
        await client.post(SIGN_UP, json={"email": taken["email"], "password": PASSWORD})
        for taken in (first, second)
    ]

    assert [answer.status_code for answer in answers] == [409, 409]
    assert answers[0].json()["type"] == answers[1].json()["type"] != "about:blank"
    assert answers[0].json()["title"] == answers[1].json()["title"]


async def test_other_problems_keep_about_blank_and_the_status_phrase(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.get("/api/v1/nothing-here")
    invalid = await client.post(SIGN_UP, json={"email": "not-an-email", "password": PASSWORD})

    assert missing.json()["type"] == "about:blank"
    assert missing.json()["title"] == "Not Found"
    assert invalid.json()["type"] == "about:blank"
    assert invalid.json()["title"] == HTTPStatus(422).phrase
