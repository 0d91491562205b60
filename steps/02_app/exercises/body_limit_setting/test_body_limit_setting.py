"""Exercise: MAX_BODY_BYTES sets the body limit, and its 413 still reaches a browser script."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request

from app.config import Settings, SettingsError, load_settings

ORIGIN = "https://app.example.com"
LIMIT = 100


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The step's test settings, with a body limit of 100 bytes."""
    monkeypatch.setenv("MAX_BODY_BYTES", str(LIMIT))
    return Settings(
        _env_file=None, environment="test", trusted_hosts=["test"], cors_origins=[ORIGIN]
    )


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    """The step's app with a route that reads the whole body."""

    @app.post("/test/upload")
    async def upload(request: Request) -> dict[str, int]:
        """Read the body and report its size."""
        return {"bytes": len(await request.body())}

    return app


async def chunks(total: int) -> AsyncIterator[bytes]:
    """Yield `total` bytes in chunks of 10, without a Content-Length."""
    for _ in range(total // 10):
        yield b"x" * 10


async def test_a_body_at_the_limit_is_read(client: httpx.AsyncClient) -> None:
    response = await client.post("/test/upload", content=b"x" * LIMIT)

    assert response.status_code == 200, response.text
    assert response.json() == {"bytes": LIMIT}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_over_the_limit_gets_a_413_a_browser_script_can_read(
    client: httpx.AsyncClient, chunked: bool
) -> None:
    body = chunks(LIMIT + 10) if chunked else b"x" * (LIMIT + 1)

    response = await client.post("/test/upload", content=body, headers={"Origin": ORIGIN})

    assert response.status_code == 413, response.text
    assert response.json()["detail"] == (
        f"The request body is larger than the limit of {LIMIT} bytes."
    )
    assert response.headers["access-control-allow-origin"] == ORIGIN


@pytest.mark.parametrize("value", ["0", "-1", "lots"])
def test_a_limit_that_is_not_a_positive_whole_number_stops_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    monkeypatch.setenv("MAX_BODY_BYTES", value)
    monkeypatch.chdir(tmp_path)  # away from any `.env` of yours

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert str(caught.value).startswith("Setting MAX_BODY_BYTES ")
    assert len(str(caught.value).splitlines()) == 1
