"""The contract's HTTP API as small helpers, and the problem+json assertion."""

import uuid
from collections.abc import Coroutine
from typing import Any

import httpx

from harness.traffic import Outcome

PASSWORD = "correct horse battery staple"
PROBLEM_JSON = "application/problem+json"


def new_email(tag: str) -> str:
    """A unique address, so tests sharing the database never collide."""
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


def signup(client: httpx.AsyncClient, email: str) -> Coroutine[Any, Any, httpx.Response]:
    """POST /api/v1/users (the request, not yet awaited)."""
    return client.post("/api/v1/users", json={"email": email, "password": PASSWORD})


async def create_user(client: httpx.AsyncClient, tag: str) -> dict[str, Any]:
    """Sign a new user up and return the body; fails the test on anything but 201."""
    response = await signup(client, new_email(tag))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(client: httpx.AsyncClient, email: str) -> httpx.Response:
    """POST /api/v1/auth/token with the OAuth2 password form."""
    return await client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})


async def login_tokens(client: httpx.AsyncClient, email: str) -> dict[str, Any]:
    """Log in and return the token pair; fails the test on anything but 200."""
    response = await login(client, email)
    assert response.status_code == 200, (
        f"Logging in must answer 200 (is authentication in final/ yet?): {response.text}"
    )
    tokens: dict[str, Any] = response.json()
    return tokens


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    """The Authorization header for an access token."""
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def assert_problem(response: httpx.Response, status: int) -> None:
    """The response has this status and an RFC 9457 problem+json body that says so."""
    assert response.status_code == status, response.text
    assert response.headers.get("content-type", "").startswith(PROBLEM_JSON), response.headers
    body = response.json()
    assert body["status"] == status, body
    assert body["title"], body
    assert body["detail"], body


def assert_outcome_is_problem(outcome: Outcome, status: int) -> None:
    """The same check on a recorded outcome."""
    assert outcome.status == status, outcome.describe()
    assert outcome.content_type.startswith(PROBLEM_JSON), outcome.describe()
    assert "Traceback" not in outcome.body, outcome.describe()
