"""Start, track and stop the processes the suite owns (uvicorn, redis-server, pgbouncer)."""

import asyncio
import contextlib
import os
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"


@dataclass
class OwnedProcess:
    """A child process the suite started, with the file its output goes to."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    # Signals sent on purpose (a test's SIGKILL), so the leak check can tell them apart.
    signals_sent: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        """The operating-system process id."""
        return self.process.pid

    def is_alive(self) -> bool:
        """True while the process has not been reaped."""
        return self.process.returncode is None

    def send(self, signum: int) -> None:
        """Send a signal to this process (only ever to a process the suite started)."""
        self.signals_sent.append(signum)
        os.kill(self.pid, signum)

    def log_tail(self, lines: int = 60) -> str:
        """The last lines the process wrote, for a failing test's report."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        return "\n".join(text.splitlines()[-lines:])


# Every process the suite has started, alive or not: the leak check reads it.
STARTED: list[OwnedProcess] = []


async def spawn(
    name: str, argv: list[str], *, cwd: Path, env: dict[str, str], log_path: Path
) -> OwnedProcess:
    """Start argv with its stdout and stderr in log_path, and register it."""
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            # Its own process group: a Ctrl-C in the terminal reaches pytest, whose
            # fixtures then stop the child in order, instead of both dying at once.
            start_new_session=True,
        )
    owned = OwnedProcess(name=name, process=process, log_path=log_path)
    STARTED.append(owned)
    return owned


async def stop(owned: OwnedProcess, *, grace_seconds: float) -> int:
    """SIGTERM, then SIGKILL if it is still running after grace_seconds; return its exit code."""
    if owned.is_alive():
        with contextlib.suppress(ProcessLookupError):
            owned.send(signal.SIGTERM)
        try:
            return await asyncio.wait_for(owned.process.wait(), grace_seconds)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                owned.send(signal.SIGKILL)
    return await owned.process.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# A port that was free a moment ago and is closed now: "a server that is down".
closed_port = free_port
