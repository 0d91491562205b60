"""Exercise: `add_server_timing(name, duration_ms)`, a route's own entries in Server-Timing."""

import re

import httpx
import pytest
from fastapi import FastAPI

# The module, not the function: until the function exists, each test fails on
# its own instead of the whole file failing to import.
from app import middleware


def timing_entries(response: httpx.Response) -> list[str]:
    """Return the Server-Timing entries, whether sent as one header or several."""
    values = response.headers.get_list("server-timing")
    return [entry.strip() for value in values for entry in value.split(",")]


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    """The step's app with two routes: one adds entries, one does not."""

    @app.get("/test/timed")
    async def timed() -> dict[str, str]:
        """Report two parts of the work as Server-Timing entries."""
        middleware.add_server_timing("db", 3.4)
        middleware.add_server_timing("cache", 0.5)
        return {"status": "ok"}

    @app.get("/test/untimed")
    async def untimed() -> dict[str, str]:
        """Add no entry."""
        return {"status": "ok"}

    return app


async def test_a_routes_entries_follow_the_apps_own(client: httpx.AsyncClient) -> None:
    response = await client.get("/test/timed")

    assert response.status_code == 200, response.text
    entries = timing_entries(response)
    assert re.fullmatch(r"app;dur=\d+\.\d", entries[0]), entries
    assert entries[1:] == ["db;dur=3.4", "cache;dur=0.5"]


async def test_entries_do_not_leak_into_the_next_request(client: httpx.AsyncClient) -> None:
    await client.get("/test/timed")

    response = await client.get("/test/untimed")

    assert [entry.split(";")[0] for entry in timing_entries(response)] == ["app"]


def test_outside_a_request_it_does_nothing() -> None:
    middleware.add_server_timing("startup", 12.0)


@pytest.mark.parametrize(
    "name",
    ["", "db query", "db;dur=0", "db,evil", "x" * 65],
    ids=["empty", "space", "semicolon", "comma", "65 characters"],
)
def test_a_name_that_could_forge_the_header_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="Server-Timing"):
        middleware.add_server_timing(name, 1.0)


@pytest.mark.parametrize("duration_ms", [-1.0, float("nan"), float("inf")])
def test_a_duration_that_is_no_duration_is_refused(duration_ms: float) -> None:
    with pytest.raises(ValueError, match="Server-Timing"):
        middleware.add_server_timing("db", duration_ms)
