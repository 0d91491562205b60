"""Exercise: a replayed refresh token is logged as a warning with the session id, never a secret."""

import logging

import httpx
import jwt
import pytest
from tests.conftest import LoginFactory, UserFactory

REFRESH = "/api/v1/auth/refresh"


async def test_a_replay_logs_one_warning_with_the_session_id_and_no_secret(
    client: httpx.AsyncClient,
    user: UserFactory,
    tokens: LoginFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    owner = await user()
    stolen = await tokens(owner)
    session_id = jwt.decode(stolen["access_token"], options={"verify_signature": False})["sid"]
    rotated = await client.post(REFRESH, json={"refresh_token": stolen["refresh_token"]})
    assert rotated.status_code == 200, rotated.text

    replayed = await client.post(REFRESH, json={"refresh_token": stolen["refresh_token"]})

    assert replayed.status_code == 401, replayed.text
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    message = warnings[0].getMessage()
    assert session_id in message, message
    assert warnings[0].name == "app.routes.auth"
    # Neither secret, the spent one nor the one the rotation issued.
    for secret in (stolen["refresh_token"], rotated.json()["refresh_token"]):
        assert secret.split(".", 1)[1] not in caplog.text


async def test_a_guessed_secret_is_no_replay_and_logs_no_warning(
    client: httpx.AsyncClient,
    user: UserFactory,
    tokens: LoginFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    pair = await tokens(await user())
    session_id = pair["refresh_token"].split(".")[0]

    guessed = await client.post(REFRESH, json={"refresh_token": f"{session_id}.not-the-secret"})

    assert guessed.status_code == 401, guessed.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
