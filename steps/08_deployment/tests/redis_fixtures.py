"""Redis fixtures, as a pytest plugin: a client on the test database, and ways to break Redis."""

import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis
from redis.driver_info import DriverInfo
from redis.exceptions import RedisError
from tests.redis_server import RedisServer

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
# redis-py reads its version from its package metadata for each connection it
# opens unless told it once: a file read the blocking-call check would refuse.
DRIVER_INFO = DriverInfo()


def redis_url() -> str:
    """The test Redis: REDIS_URL (nox sets it) or the local default, database 7."""
    return os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)


def own_client(url: str, *, timeout: float = 5.0) -> Redis:
    """A client for the test's own commands (not the app's: that one is under test)."""
    return Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, driver_info=DRIVER_INFO
    )


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    """A client on the test database, flushed before and after the test."""
    client = own_client(redis_url())
    try:
        await client.ping()
    except (RedisError, OSError) as error:
        await client.aclose()
        address = urlsplit(redis_url())
        pytest.fail(
            f"Redis is not answering at {address.hostname}:{address.port or 6379} "
            f"({type(error).__name__}): start it (for example `redis-server`), set "
            "REDIS_URL to a reachable server, or run the tests through "
            '`./workshop -s "step(08_deployment)"`.',
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
    return f"redis://127.0.0.1:{port}/7"


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
