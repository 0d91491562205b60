"""The blocking-call check itself: a route that blocks the event loop fails its test."""

import time

import httpx
import pytest
from blockbuster import BlockingError
from fastapi import FastAPI

pytestmark = pytest.mark.task("app-factory")


async def test_a_route_that_sleeps_on_the_loop_fails(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    @app.get("/test/sleeps")
    async def sleeps() -> dict[str, str]:
        """Block the event loop the way a sync library call would."""
        time.sleep(0.001)  # noqa: ASYNC251 - the point of the test
        return {"status": "slept"}

    # No error handler of our own yet: the error reaches the test as it is.
    with pytest.raises(BlockingError, match=r"time\.sleep"):
        await client.get("/test/sleeps")


async def test_the_same_sleep_off_the_loop_is_allowed(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    @app.get("/test/sleeps-in-a-thread")
    def sleeps_in_a_thread() -> dict[str, str]:
        """A plain `def` route: FastAPI runs it in its thread pool, off the loop."""
        time.sleep(0.001)
        return {"status": "slept"}

    response = await client.get("/test/sleeps-in-a-thread")

    assert response.status_code == 200, response.text
