"""A redis-server of the test's own, for faults the shared one must not suffer."""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

START_SECONDS = 10.0


def redis_server_binary() -> str:
    """REDIS_SERVER (nox sets it), else redis-server from PATH; fail saying how to get one."""
    found = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
    if not found:
        raise RuntimeError(
            "These tests start a redis-server of their own and none was found: install "
            "Redis, set REDIS_SERVER to a redis-server (or valkey-server) binary, or run "
            'the tests through `./workshop -s "step(06_errors)"`, which sets it.'
        )
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class RedisServer:
    """A redis-server on a free port, its files in `folder`; stop, pause and break it at will.

    Its methods block: async tests call them through asyncio.to_thread.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL, database 0: the whole server is the test's."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> "redis.Redis":
        """A synchronous client with short timeouts, for the test's own commands."""
        return redis.Redis(port=self.port, socket_timeout=5, socket_connect_timeout=1)

    def start(self) -> None:
        """Start it (again, on the same port) and wait until it answers PING."""
        self.folder.mkdir(parents=True, exist_ok=True)
        argv = [
            redis_server_binary(),
            *("--bind", "127.0.0.1", "--port", str(self.port)),
            *("--dir", str(self.folder), "--appendonly", "no"),
            # A save point, as a default redis-server has: only then does a failed
            # snapshot make it refuse writes. An hour away: no test run sees it.
            *("--save", "3600 1"),
        ]
        log = (self.folder / "server.log").open("ab")
        with log:
            self._process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_SECONDS
        with self.client() as client:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise RuntimeError(f"redis-server exited: {self._log_tail()}")
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError):
                    time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer PING: {self._log_tail()}")

    def stop(self) -> None:
        """Stop it at once (SIGKILL: a crash), resuming it first if it was paused."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)
            self._process.kill()
            self._process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: its sockets stay open and nothing answers."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT: undo pause()."""
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def refuse_writes(self) -> None:
        """Make a snapshot fail, as a full disk does: from then on writes get MISCONF."""
        # The server writes its snapshot into its folder: with the folder gone,
        # the save fails for any user, root included.
        shutil.rmtree(self.folder)
        with self.client() as client:
            client.bgsave()
            deadline = time.monotonic() + START_SECONDS
            while time.monotonic() < deadline:
                status = client.info("persistence")["rdb_last_bgsave_status"]
                if status == "err" and not client.info("persistence")["rdb_bgsave_in_progress"]:
                    return
                time.sleep(0.02)
        raise RuntimeError("The snapshot did not fail: writes are still accepted.")

    def _log_tail(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"
