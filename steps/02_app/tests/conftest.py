"""Fixtures: settings -> app -> client, with the app's lifespan run around each test."""

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send
from tests.blocking import CaughtBlockingCalls, blocking_calls_fail

from app.config import Settings
from app.main import create_app


@pytest.fixture(autouse=True)
def no_blocking_calls() -> Iterator[CaughtBlockingCalls]:
    """Fail any test in which code running on the event loop makes a blocking call.

    blockbuster patches the calls that block (time.sleep, socket and file I/O,
    os calls, lock waits) to raise BlockingError when they run inside a running
    event loop: a blocking call is caught by what it is, however fast or busy
    the machine is, not by how long it took.
    """
    with blocking_calls_fail() as caught:
        yield caught


@pytest.fixture
def settings() -> Settings:
    """Settings built for the tests, independent of the developer's `.env`."""
    return Settings(
        _env_file=None,
        environment="test",
        trusted_hosts=["test", "localhost"],
        cors_origins=["https://app.example.com"],
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The application under test, built from the test settings."""
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in process, inside its lifespan."""
    async with app.router.lifespan_context(app) as state:

        async def app_with_state(scope: Scope, receive: Receive, send: Send) -> None:
            # What an ASGI server does with the lifespan's state: a copy per request.
            await app({**scope, "state": dict(state or {})}, receive, send)

        transport = httpx.ASGITransport(app=app_with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
