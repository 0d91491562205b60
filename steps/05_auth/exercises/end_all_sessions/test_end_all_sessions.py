"""Exercise: DELETE /api/v1/auth/sessions logs the caller out everywhere, this device included."""

import httpx
from tests.conftest import LoginFactory, UserFactory, bearer

SESSIONS = "/api/v1/auth/sessions"
ME = "/api/v1/users/me"


async def test_ending_every_session_refuses_every_token_of_the_caller_at_once(
    client: httpx.AsyncClient, user: UserFactory, tokens: LoginFactory
) -> None:
    owner, stranger = await user(), await user()
    pairs = [await tokens(owner) for _ in range(3)]
    theirs = await tokens(stranger)
    # Each session checked once: their markers in Redis say "live".
    for pair in [*pairs, theirs]:
        assert (await client.get(ME, headers=bearer(pair["access_token"]))).status_code == 200

    ended = await client.delete(SESSIONS, headers=bearer(pairs[0]["access_token"]))

    assert ended.status_code == 204, ended.text
    for pair in pairs:
        refused = await client.get(ME, headers=bearer(pair["access_token"]))
        assert refused.status_code == 401, refused.text
        again = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        assert again.status_code == 401, again.text
    # Only the caller's: another user's session lives on.
    assert (await client.get(ME, headers=bearer(theirs["access_token"]))).status_code == 200


async def test_ending_every_session_needs_a_token(client: httpx.AsyncClient) -> None:
    refused = await client.delete(SESSIONS)

    assert refused.status_code == 401, refused.text
    assert refused.headers["www-authenticate"] == "Bearer"
