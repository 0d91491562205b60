"""Redis fixtures, as a pytest plugin: a client on the test database, and ways to break Redis."""

import asyncio
import os
import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis
from tests.redis_server import RedisServer

from app.redis_client import REDIS_ERRORS, create_redis

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
# Short enough that fault tests stay quick, long enough for a loaded CI machine.
FAULT_SOCKET_TIMEOUT = 0.3
# Longer than FAULT_SOCKET_TIMEOUT, so a paused call times out; bounded, because
# CLIENT PAUSE stalls every client of the server, other test runs included.
PAUSE_MILLISECONDS = 1500


def redis_url() -> str:
    """The test Redis: REDIS_URL (nox sets it) or the local default, database 9."""
    return os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)


async def wait_for_redis_clock(redis: Redis, seconds: float) -> None:
    """Wait until the Redis server's clock, the one the rate limits read, has moved on by seconds.

    Not this process's clock: the limits take their time from the server (TIME).
    """

    async def now() -> float:
        whole, micro = await redis.time()
        return whole + micro / 1_000_000

    until = await now() + seconds
    # The local sleep may end a little before the server's clock gets there: check, sleep again.
    for _ in range(100):
        left = until - await now()
        if left <= 0:
            return
        await asyncio.sleep(left + 0.01)
    pytest.fail(f"The Redis server's clock did not move on by {seconds} s.")


def make_client(url: str, *, timeout: float) -> Redis:
    """A client built the way the app builds its own, with the given timeouts."""
    return create_redis(
        url,
        socket_timeout=timeout,
        connect_timeout=timeout,
        health_check_interval=30,
        max_connections=64,
    )


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    """A client on the test database, flushed before and after the test."""
    # Its timeout outlasts a CLIENT PAUSE, so the flush after a pause test waits it out.
    client = make_client(redis_url(), timeout=5.0)
    try:
        await client.ping()
        error = None
    except REDIS_ERRORS as exc:
        error = type(exc).__name__
    if error is not None:
        # Failed outside the except: the message alone, not behind redis-py's traceback.
        await client.aclose()
        address = urlsplit(redis_url())
        pytest.fail(
            f"Redis is not answering at {address.hostname}:{address.port or 6379} "
            f"({error}): start it (for example `redis-server`, or a "
            "redis:7 container on port 6379), set REDIS_URL to a reachable server, "
            "or run the tests through `./workshop -s final`.",
            pytrace=False,
        )
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


@pytest.fixture
def closed_port_url() -> str:
    """A Redis URL nothing listens on: a port the OS handed out, then closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/9"


@pytest.fixture
async def unreachable_redis(closed_port_url: str) -> AsyncIterator[Redis]:
    """A client pointed at a closed port: every call fails to connect."""
    client = make_client(closed_port_url, timeout=FAULT_SOCKET_TIMEOUT)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def fault_redis(redis: Redis) -> AsyncIterator[Redis]:
    """A client of the real test database with short timeouts, for the code under test."""
    client = make_client(redis_url(), timeout=FAULT_SOCKET_TIMEOUT)
    try:
        yield client
    finally:
        await client.aclose()


@asynccontextmanager
async def redis_paused(milliseconds: int = PAUSE_MILLISECONDS) -> AsyncIterator[None]:
    """Pause every client of the real server (CLIENT PAUSE ... ALL) for a bounded time."""
    # A dedicated connection: a pooled one could be the one the code under test times out on.
    admin = make_client(redis_url(), timeout=milliseconds / 1000 + 5.0)
    try:
        await admin.client_pause(milliseconds, all=True)
        yield
    finally:
        # The pause ends by itself; UNPAUSE ends it early where the server lets it
        # (Redis 7.0 queues even UNPAUSE behind the pause, so this may wait it out).
        await admin.client_unpause()
        await admin.aclose()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, to stop, pause or break; gone after the test."""
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def redis_commands(redis: Redis) -> AsyncIterator[list[str]]:
    """Collect every command clients send to the Redis server inside the block.

    Read with MONITOR, which the server feeds as it runs each command; the
    commands a script runs itself are left out (the script call stands for
    them). The list is complete once the block has ended.
    """
    sent: list[str] = []
    async with redis.monitor() as monitor:
        yield sent
        # A command of our own after the block's: once MONITOR shows it, it has
        # shown everything before it (a bounded wait: the read has a timeout).
        end = f"end-of-block-{uuid.uuid4().hex}"
        await redis.echo(end)
        while (command := await monitor.next_command())["command"] != f"ECHO {end}":
            if command["client_type"] != "lua":
                sent.append(command["command"])


def naming(sent: list[str], key: str) -> list[str]:
    """The names of the commands in sent that have key as one of their arguments."""
    return [command.split(" ")[0] for command in sent if key in command.split(" ")]


def logged(log: pytest.LogCaptureFixture, logger: str) -> list[str]:
    """The lines one logger wrote during the test, as an operator reads them."""
    return [record.getMessage() for record in log.records if record.name == logger]


def is_first_outage_warning(line: str, message: str, error: str = "ConnectionError") -> bool:
    """Tell whether line is message as ThrottledLog first writes it, for an error of this type.

    ThrottledLog adds the error's type and text, and how many lines it held back:
    none, for the first line of an outage.
    """
    tail = rf" \({error}: .+; 0 similar messages suppressed since the last one\)\."
    return re.fullmatch(re.escape(message) + tail, line) is not None
