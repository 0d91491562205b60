"""Exercise: /metrics counts sign-ups as users_created_total, from 0; refused ones do not count."""

import httpx
from tests.conftest import PASSWORD, UserFactory

SIGN_UP = "/api/v1/users"


async def sign_ups_counted(client: httpx.AsyncClient) -> float:
    """The value of users_created_total in the app's /metrics."""
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    for line in response.text.splitlines():
        if line.startswith("users_created_total "):
            return float(line.split()[1])
    raise AssertionError(f"/metrics has no users_created_total sample:\n{response.text}")


async def test_the_counter_is_there_at_zero_before_the_first_sign_up(
    client: httpx.AsyncClient,
) -> None:
    # Registered at start-up: a dashboard shows 0, not "no data".
    assert await sign_ups_counted(client) == 0


async def test_each_sign_up_counts_once(client: httpx.AsyncClient, user: UserFactory) -> None:
    await user()
    await user()

    assert await sign_ups_counted(client) == 2


async def test_a_refused_sign_up_is_not_counted(
    client: httpx.AsyncClient, user: UserFactory
) -> None:
    taken = await user()

    again = await client.post(SIGN_UP, json={"email": taken["email"], "password": PASSWORD})
    invalid = await client.post(SIGN_UP, json={"email": "not-an-email", "password": PASSWORD})

    assert again.status_code == 409, again.text
    assert invalid.status_code == 422, invalid.text
    assert await sign_ups_counted(client) == 1
