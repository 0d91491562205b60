"""Start the applications under test as uvicorn subprocesses, all with the same settings."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HOST = "127.0.0.1"
# uvicorn's event loops. uvloop first: the default here, and what uvicorn picks
# itself when uvloop is installed (uvicorn[standard], final/'s image).
LOOPS = ("uvloop", "asyncio")
OUTPUT_TAIL_BYTES = 8192


def uvicorn_options(loop: str = LOOPS[0]) -> tuple[str, ...]:
    """Return the options every application runs with, so that only the application differs."""
    return ("--workers", "1", "--loop", loop, "--http", "httptools", "--no-access-log")


class ServerError(Exception):
    """An application did not start or did not become ready."""


class OutputTail:
    """Drain a process's output in a thread, keeping only its end for error messages.

    final/ logs a JSON line per request: an undrained pipe would fill and block
    the server, and a log file would grow by hundreds of megabytes per run.
    """

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._tail = b""
        self._stream = process.stdout
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        if self._stream is None:
            return
        descriptor = self._stream.fileno()
        # Large reads keep this thread's CPU use negligible next to the server's.
        while chunk := os.read(descriptor, 65536):
            self._tail = (self._tail + chunk)[-OUTPUT_TAIL_BYTES:]

    def text(self, lines: int = 15) -> str:
        """Return the last lines the process printed."""
        return "\n".join(self._tail.decode(errors="replace").splitlines()[-lines:])


@dataclass
class Server:
    """A running application: its process, port and recent output."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    output: OutputTail = field(repr=False)

    @property
    def base_url(self) -> str:
        """Return http://127.0.0.1:<port>."""
        return f"http://{HOST}:{self.port}"

    def wait_ready(self, path: str, timeout: float = 30.0) -> None:
        """Poll `path` until it answers 200; fail with the server's output if it dies or stalls."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with code {self.process.returncode} during start-up: "
                    f"{self.output.text(lines=1) or 'it printed nothing'}"
                )
            try:
                if httpx.get(self.base_url + path, timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise ServerError(f"{self.name} did not answer 200 on {path} within {timeout:.0f} s.")

    def stop(self) -> None:
        """Stop the server gracefully, killing it if it does not exit within 10 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    """Return a TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def start_uvicorn(
    name: str, app: str, *, cwd: Path, env: dict[str, str], loop: str = LOOPS[0]
) -> Server:
    """Start `uvicorn app` from `cwd` on a free port with the shared options."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port)]
    process = subprocess.Popen(  # noqa: S603
        [*command, *uvicorn_options(loop)],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return Server(name=name, process=process, port=port, output=OutputTail(process))


def cpu_seconds(pid: int) -> float | None:
    """Return the CPU time a process has used so far, or None where /proc is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name, which is in parentheses and may hold spaces.
    fields = stat.rsplit(")", 1)[1].split()
    user_ticks, system_ticks = int(fields[11]), int(fields[12])
    return (user_ticks + system_ticks) / os.sysconf("SC_CLK_TCK")


def wait_until_quiet(servers: list[Server], *, limit: float = 20.0) -> None:
    """Wait until the servers use under 10% of a core, e.g. after queued password hashes."""
    window = 0.5
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = [cpu_seconds(server.process.pid) for server in servers]
        time.sleep(window)
        after = [cpu_seconds(server.process.pid) for server in servers]
        if None in before or None in after:
            return  # no /proc: the short sleep above is all we can do
        used = sum(b - a for a, b in zip(before, after, strict=True) if a and b)
        if used / window < 0.1:
            return
