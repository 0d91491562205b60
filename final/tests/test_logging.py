"""Log lines: JSON with the request id, route templates only, no secrets."""

import asyncio
import io
import json
import logging
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send
from tests.conftest import ServerClock, make_settings, open_client

from app.logging import BatchingLogHandler, ConsoleFormatter, JsonFormatter, RequestIdFilter
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
    assert line["message"] == "Request handled."
    assert line["route"] == "/api/v1/users/{user_id}"
    assert line["status"] == 401
    assert line["method"] == "GET"
    assert line["request_id"] == "log-1"
    assert line["client"] == "127.0.0.1"  # the address, without the port
    assert isinstance(line["duration_ms"], float)
    assert "0b7e3f52" not in json.dumps(line)


async def test_access_log_line_of_a_request_without_a_client_address_says_null(
    app: FastAPI, log_lines: JsonLines
) -> None:
    async def over_a_unix_socket(scope: Scope, receive: Receive, send: Send) -> None:
        # Served on a Unix socket (uvicorn --uds), a request has no client address.
        scope["client"] = None
        await app(scope, receive, send)

    # /health/live reads no state: no lifespan is needed.
    transport = httpx.ASGITransport(app=over_a_unix_socket)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.get("/health/live")
    assert r.status_code == 200, r.text
    [line] = [line for line in log_lines.lines if line["logger"] == "app.access"]
    assert line["client"] is None


class WhenLogged(logging.Handler):
    """Keep each record with the time.perf_counter() reading at which it was logged."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[logging.LogRecord, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record, time.perf_counter()))


async def test_access_log_duration_is_the_time_the_request_took_in_milliseconds(
    app: FastAPI,
) -> None:
    async def sleep(seconds: float) -> dict[str, float]:
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    app.add_api_route("/test/sleep", sleep)
    server = ServerClock(app)
    logged = WhenLogged()
    access_logger = logging.getLogger("app.access")
    access_logger.addHandler(logged)
    try:
        # The route reads no state: no lifespan is needed.
        transport = httpx.ASGITransport(app=server)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            # A first request pays the one-off costs (the route's series, the first
            # log line) that would otherwise fall between the next one's end and its line.
            for seconds in (0, 0.5):
                r = await client.get("/test/sleep", params={"seconds": seconds})
                assert r.status_code == 200, r.text
    finally:
        access_logger.removeHandler(logged)
    [_first, (record, logged_at)] = logged.records
    duration_ms: float = record.duration_ms  # type: ignore[attr-defined]
    # Bounds, not a speed test: the route slept, and the request's time ends
    # before its line is logged (plus the field's rounding to 0.01 ms).
    assert 500 <= duration_ms <= (logged_at - server.arrived) * 1000 + 0.005


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


class RecordingStream(io.StringIO):
    """A stream that remembers which threads wrote to it."""

    def __init__(self) -> None:
        super().__init__()
        self.writer_threads: set[str] = set()

    def write(self, text: str) -> int:
        self.writer_threads.add(threading.current_thread().name)
        return super().write(text)


def _access_record(number: int) -> logging.LogRecord:
    record = logging.LogRecord(
        "app.access", logging.INFO, __file__, 1, "Request handled.", None, None
    )
    record.status = number
    return record


def test_log_lines_are_written_by_the_writer_thread_never_by_the_caller() -> None:
    stream = RecordingStream()
    handler = BatchingLogHandler(JsonFormatter(), stream=stream, interval=0.01)
    try:
        for number in range(3):
            handler.handle(_access_record(number))
    finally:
        handler.close()  # joins the writer, which writes what is queued first
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["status"] for line in lines] == [0, 1, 2]
    assert stream.writer_threads == {"log-writer"}


def test_a_full_log_queue_drops_lines_and_says_how_many() -> None:
    stream = RecordingStream()
    # The writer thread never wakes on its own during the test: flush() writes.
    handler = BatchingLogHandler(JsonFormatter(), stream=stream, interval=3600, max_pending=2)
    try:
        for number in range(5):
            handler.handle(_access_record(number))
        handler.flush()
    finally:
        handler.close()
    first, second, warning = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (first["status"], second["status"]) == (0, 1)
    assert warning["level"] == "WARNING"
    assert warning["message"].startswith("3 log lines were dropped")
