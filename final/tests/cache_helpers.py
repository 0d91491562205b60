"""What the user-cache tests hand the cache (loaders, stats), and how they watch Redis work."""

import asyncio
import uuid

from redis.asyncio.client import Monitor

USER_JSON = b'{"id": "u1", "email": "ada@example.com"}'
# Bounds a wait for Redis to run a command, should the code never send it; times nothing.
HANG_BOUND_SECONDS = 30


class RecordingStats:
    """CacheStats that counts, so tests can assert what the cache reported."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.errors = 0

    def hit(self) -> None:
        self.hits += 1

    def miss(self) -> None:
        self.misses += 1

    def error(self) -> None:
        self.errors += 1


class CountingLoader:
    """A loader that returns a fixed value and counts its calls, optionally after a pause."""

    def __init__(self, value: bytes | None = USER_JSON, delay: float = 0.0) -> None:
        self.value = value
        self.delay = delay
        self.calls = 0

    async def __call__(self) -> bytes | None:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return self.value


class BlockingLoader:
    """A loader that signals it started, then waits to be released: a slow query."""

    def __init__(self, value: bytes | None) -> None:
        self.value = value
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.calls = 0

    async def __call__(self) -> bytes | None:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        return self.value


def new_user_id() -> str:
    return str(uuid.uuid4())


async def wait_until_monitor_shows(monitor: Monitor, command: str) -> None:
    """Return once the server MONITOR watches has run `command` (its words joined by spaces)."""
    async with asyncio.timeout(HANG_BOUND_SECONDS):
        while (await monitor.next_command())["command"] != command:
            pass
