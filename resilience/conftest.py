"""Fixtures: one migrated database per run, and real processes started and stopped per test."""

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from harness.database import database_url, migrate, recreate_database
from harness.launcher import Launcher
from harness.processes import STARTED
from redis.exceptions import ConnectionError as RedisConnectionError

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/10"
FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Remember whether a test failed, so its fixtures can show the service logs."""
    report = yield
    if call.when == "call" and getattr(report, "failed", False):
        item.stash[FAILED] = True
    return report


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """After the whole run, fail if a process the suite started (uvicorn, redis, pgbouncer) runs."""
    yield
    leftovers = [owned for owned in STARTED if owned.is_alive()]
    for owned in leftovers:
        # Do not leave them running for the next run to trip over.
        os.kill(owned.pid, signal.SIGKILL)
    assert not leftovers, "Processes still running after the suite: " + ", ".join(
        f"{owned.name} (pid {owned.pid})" for owned in leftovers
    )


@pytest.fixture(scope="session")
def db_url() -> str:
    """The suite's database (DATABASE_URL, database workshop_resilience), recreated and migrated."""
    url = database_url()
    asyncio.run(recreate_database(url))
    migrate(url)
    return url


@pytest.fixture(scope="session")
def shared_redis_url() -> str:
    """The shared Redis (REDIS_URL, db 10), emptied once: only for cases that do not break it."""
    url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        # Our database number only: rate-limit keys from an earlier run would refuse requests.
        client.flushdb()
        error = None
    except RedisConnectionError as exc:
        error = type(exc).__name__
    finally:
        client.close()
    if error is not None:
        # Failed outside the except: the message alone, not behind redis-py's traceback.
        pytest.fail(
            f"Redis is not answering at REDIS_URL ({error}): start it, "
            "or run the suite through `./workshop -s resilience`, which starts one.",
            pytrace=False,
        )
    return url


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where every process's output goes (one file per process)."""
    return tmp_path_factory.mktemp("process-logs")


@pytest.fixture
async def launch(
    request: pytest.FixtureRequest, log_dir: Path, db_url: str, shared_redis_url: str
) -> AsyncIterator[Launcher]:
    """Start processes for this test; they are stopped (and their logs shown on failure) after."""
    launcher = Launcher(log_dir, db_url, shared_redis_url, request.node.name)
    try:
        yield launcher
    finally:
        await launcher.close(show_logs=request.node.stash.get(FAILED, False))
