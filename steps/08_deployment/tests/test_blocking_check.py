"""The blocking-call check itself: a route that blocks the event loop fails its test."""

import time

import httpx
import pytest
from fastapi import FastAPI
from tests.blocking import CaughtBlockingCalls

pytestmark = pytest.mark.task("app-factory")


async def test_a_route_that_sleeps_on_the_loop_is_caught(
    app: FastAPI, client: httpx.AsyncClient, no_blocking_calls: CaughtBlockingCalls
) -> None:
    @app.get("/test/sleeps")
    async def sleeps() -> dict[str, str]:
        """Block the event loop the way a sync library call would."""
        time.sleep(0.001)  # noqa: ASYNC251 - the point of the test
        return {"status": "slept"}

    response = await client.get("/test/sleeps")

    # The app answered 500, as for any unexpected error; the check saw why, and
    # would fail this test at teardown: take the record, so only this assert decides.
    assert response.status_code == 500, response.text
    assert no_blocking_calls.calls == ["Blocking call to time.sleep"]
    no_blocking_calls.calls.clear()


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
