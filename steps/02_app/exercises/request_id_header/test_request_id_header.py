"""Exercise: REQUEST_ID_HEADER names the request id's header, followed through the whole stack."""

import re
from pathlib import Path

import httpx
import pytest

from app.config import Settings, SettingsError, load_settings
from app.middleware import DEFAULT_MAX_BODY_BYTES

ORIGIN = "https://app.example.com"
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The step's test settings, with the request id in X-Correlation-ID."""
    monkeypatch.setenv("REQUEST_ID_HEADER", "X-Correlation-ID")
    return Settings(
        _env_file=None, environment="test", trusted_hosts=["test"], cors_origins=[ORIGIN]
    )


async def test_a_sane_id_comes_back_in_the_configured_header(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live", headers={"X-Correlation-ID": "abc-123"})

    assert response.headers.get("x-correlation-id") == "abc-123"
    assert "x-request-id" not in response.headers


async def test_an_id_in_the_old_header_is_not_taken(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})

    assert GENERATED_ID.fullmatch(response.headers.get("x-correlation-id", ""))


async def test_a_hostile_id_is_still_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live", headers={"X-Correlation-ID": "abc def"})

    assert GENERATED_ID.fullmatch(response.headers.get("x-correlation-id", ""))


async def test_the_413_names_the_id_of_the_configured_header(client: httpx.AsyncClient) -> None:
    too_large = b"x" * (DEFAULT_MAX_BODY_BYTES + 1)

    response = await client.post(
        "/health/live", content=too_large, headers={"X-Correlation-ID": "big-1"}
    )

    assert response.status_code == 413, response.text
    assert response.json()["request_id"] == "big-1"
    assert response.headers.get("x-correlation-id") == "big-1"


async def test_a_browser_may_send_the_header(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/health/live",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-correlation-id",
        },
    )

    assert response.status_code == 200, response.text
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "x-correlation-id" in allowed


async def test_a_browser_script_may_read_the_header(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live", headers={"Origin": ORIGIN})

    exposed = response.headers["access-control-expose-headers"].lower()
    assert "x-correlation-id" in exposed


def test_a_header_name_with_a_space_stops_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REQUEST_ID_HEADER", "X Correlation")
    monkeypatch.chdir(tmp_path)  # away from any `.env` of yours

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert str(caught.value).startswith("Setting REQUEST_ID_HEADER ")
    assert len(str(caught.value).splitlines()) == 1
