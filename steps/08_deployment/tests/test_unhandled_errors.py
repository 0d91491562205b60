"""An exception no handler expected: a 500 that says nothing, the traceback in the log."""

import json

import httpx
import pytest
from fastapi import FastAPI
from tests.conftest import assert_problem, make_settings, served_logs

from app.main import create_app

pytestmark = pytest.mark.task("unhandled-errors")

CAUSE = "secret internals: password=hunter2"


def app_with_a_failing_route() -> FastAPI:
    """The step's app with one more route, which raises what no handler expects."""
    app = create_app(make_settings())

    @app.get("/test/explode")
    async def explode() -> None:
        """Fail the way a bug does."""
        raise RuntimeError(CAUSE)

    return app


async def test_an_unhandled_exception_is_a_500_problem_that_names_no_cause(
    capfd: pytest.CaptureFixture[str],
) -> None:
    answers: list[httpx.Response] = []

    async def requests(client: httpx.AsyncClient) -> None:
        answers.append(await client.get("/test/explode", headers={"X-Request-ID": "boom-1"}))

    await served_logs(app_with_a_failing_route(), capfd, requests)

    [response] = answers
    body = assert_problem(response, 500)
    assert body["request_id"] == "boom-1"
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert "Traceback" not in response.text


async def test_the_traceback_goes_to_the_log_with_the_request_id(
    capfd: pytest.CaptureFixture[str],
) -> None:
    async def requests(client: httpx.AsyncClient) -> None:
        response = await client.get("/test/explode", headers={"X-Request-ID": "boom-2"})
        assert response.status_code == 500, response.text

    lines = await served_logs(app_with_a_failing_route(), capfd, requests)

    tracebacks = [line for line in lines if "Traceback" in json.dumps(line)]
    assert len(tracebacks) == 1, lines
    [traceback] = tracebacks
    assert traceback["request_id"] == "boom-2"
    assert "RuntimeError" in json.dumps(traceback)
    # The 500 is counted in the access log like any other answer.
    assert [line["status"] for line in lines if "route" in line] == [500], lines


async def test_the_process_keeps_serving_after_an_unhandled_exception(
    capfd: pytest.CaptureFixture[str],
) -> None:
    statuses: list[int] = []

    async def requests(client: httpx.AsyncClient) -> None:
        for path in ("/test/explode", "/health/live", "/test/explode", "/health/live"):
            statuses.append((await client.get(path)).status_code)

    await served_logs(app_with_a_failing_route(), capfd, requests)

    assert statuses == [500, 200, 500, 200]
