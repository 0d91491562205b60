"""Exercise: `GET /api/v1/users?order=newest` lists newest first, in stable pages."""

from typing import Any

import httpx

USERS = "/api/v1/users"


async def walk(client: httpx.AsyncClient, **params: str) -> list[str]:
    """Every user's email, page by page (three to a page), in the order asked for."""
    emails: list[str] = []
    cursor: str | None = None
    for _ in range(20):
        query: dict[str, Any] = {"limit": 3, **params} | ({"cursor": cursor} if cursor else {})
        response = await client.get(USERS, params=query)
        assert response.status_code == 200, response.text
        emails += [user["email"] for user in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return emails
    raise AssertionError("The pages never ended.")


async def sign_up_seven(client: httpx.AsyncClient) -> None:
    """Sign up seven users: three pages of three."""
    for n in range(7):
        response = await client.post(
            USERS, json={"email": f"user{n}@example.com", "password": "long enough"}
        )
        assert response.status_code == 201, response.text


async def test_newest_first_is_the_default_order_reversed(client: httpx.AsyncClient) -> None:
    await sign_up_seven(client)

    oldest_first = await walk(client)
    newest_first = await walk(client, order="newest")

    assert newest_first == oldest_first[::-1]


async def test_oldest_first_can_be_asked_for_by_name(client: httpx.AsyncClient) -> None:
    await sign_up_seven(client)

    assert await walk(client, order="oldest") == await walk(client)


async def test_an_unknown_order_returns_422(client: httpx.AsyncClient) -> None:
    response = await client.get(USERS, params={"order": "random"})

    assert response.status_code == 422, response.text
    assert ["query", "order"] in [error["loc"] for error in response.json()["detail"]]
