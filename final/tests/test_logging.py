"""Log lines: JSON with the request id, route templates only, no secrets."""

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from tests.conftest import make_settings, open_client

from app.logging import ConsoleFormatter, JsonFormatter, RequestIdFilter
from app.main import create_app


class JsonLines(logging.Handler):
    """Format records the way production does and keep the lines."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(RequestIdFilter())
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def log_lines() -> Iterator[JsonLines]:
    handler = JsonLines()
    logger = logging.getLogger("app")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def test_access_log_line_has_route_template_status_and_request_id(
    client: httpx.AsyncClient, log_lines: JsonLines
) -> None:
    r = await client.get(
        "/api/v1/users/0b7e3f52-8c0e-4a7e-9a38-9f1c1c2f6a11", headers={"X-Request-ID": "log-1"}
    )
    assert r.status_code == 401, r.text
    [line] = [line for line in log_lines.lines if line["logger"] == "app.access"]
    assert line["route"] == "/api/v1/users/{user_id}"
    assert line["status"] == 401
    assert line["method"] == "GET"
    assert line["request_id"] == "log-1"
    assert isinstance(line["duration_ms"], float)
    assert "0b7e3f52" not in json.dumps(line)


@pytest.fixture
def app_logging_every_statement() -> FastAPI:
    return create_app(make_settings(slow_query_ms=0))


async def test_slow_statement_is_logged_with_request_id_and_without_parameters(
    app_logging_every_statement: FastAPI, log_lines: JsonLines, database: str
) -> None:
    async for client in open_client(app_logging_every_statement):
        r = await client.get("/health/ready", headers={"X-Request-ID": "slow-1"})
        assert r.status_code == 200, r.text
    [line] = [line for line in log_lines.lines if line["logger"] == "app.db"]
    assert line["statement"] == "SELECT 1"
    assert line["request_id"] == "slow-1"
    assert "parameters" not in line


async def test_sign_up_never_logs_the_password(
    client: httpx.AsyncClient, log_lines: JsonLines
) -> None:
    r = await client.post(
        "/api/v1/users", json={"email": "quiet@example.com", "password": "do not log me"}
    )
    assert r.status_code == 201, r.text
    assert "do not log me" not in json.dumps(log_lines.lines)


def test_console_format_is_one_readable_line() -> None:
    record = logging.LogRecord("app.test", logging.INFO, __file__, 1, "Hello.", None, None)
    record.request_id = "abc"
    record.status = 200
    assert ConsoleFormatter().format(record).endswith("INFO    app.test [abc] Hello. status=200")
