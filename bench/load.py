"""Drive wrk: find it, run one load, and read its summary line."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

WRK_SCRIPT = Path(__file__).with_name("wrk_report.lua")
SUMMARY_PREFIX = "BENCH-SUMMARY "
INSTALL_HINT = (
    "wrk is not installed. Install it with `apt-get install wrk` (Debian or Ubuntu, as root), "
    "or set BENCH_INSTALL_WRK=1 when running as root to let the benchmark install it."
)


class LoadError(Exception):
    """wrk is missing, failed, or printed no summary."""


def find_wrk() -> str:
    """Return the path of wrk, installing the Debian package only when explicitly allowed."""
    found = shutil.which("wrk")
    if found:
        return found
    # Installing system packages is not something a benchmark does on its own:
    # only as root, and only when asked to.
    if os.environ.get("BENCH_INSTALL_WRK") == "1" and os.geteuid() == 0:
        print("wrk is missing: installing it with apt-get (BENCH_INSTALL_WRK=1).", flush=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False)  # noqa: S607
        found = shutil.which("wrk")
        if found:
            return found
    raise LoadError(INSTALL_HINT)


def wrk_version(wrk: str) -> str:
    """Return wrk's version string, e.g. `debian/4.1.0-3+b2`."""
    # `wrk -v` prints its banner and exits non-zero: read the banner, ignore the code.
    banner = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)  # noqa: S603
    match = re.search(r"wrk (\S+)", banner.stdout + banner.stderr)
    return match.group(1) if match else "unknown"


@dataclass(frozen=True)
class Load:
    """One wrk run: where to send requests, how hard, and what each request looks like."""

    url: str
    connections: int
    threads: int
    seconds: int
    method: str = "GET"
    body: str | None = None
    content_type: str | None = None
    authorization: str | None = None
    # A Lua call per response costs wrk CPU that the server then lacks: only
    # the cases that must tell 429 from 503 from 200 ask for it.
    count_statuses: bool = False


@dataclass(frozen=True)
class Measurement:
    """What wrk saw during one run."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    socket_errors: int
    timeouts: int
    non_2xx_3xx: int
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        """Responses per second, whatever their status."""
        return self.requests / self.seconds if self.seconds else 0.0

    def count(self, *codes: int) -> int:
        """Return how many responses had one of these statuses (needs count_statuses)."""
        return sum(self.statuses.get(code, 0) for code in codes)

    def ok_rps(self) -> float:
        """2xx responses per second (needs count_statuses)."""
        ok = sum(count for status, count in self.statuses.items() if 200 <= status < 300)
        return ok / self.seconds if self.seconds else 0.0


def start(wrk: str, load: Load) -> subprocess.Popen[str]:
    """Start wrk in the background; `finish` collects its measurement."""
    env = dict(os.environ, BENCH_METHOD=load.method)
    # The request's shape (and the bearer token) reach the Lua script through
    # the environment, never through wrk's command line.
    for name, value in (
        ("BENCH_BODY", load.body),
        ("BENCH_CONTENT_TYPE", load.content_type),
        ("BENCH_AUTHORIZATION", load.authorization),
    ):
        if value is not None:
            env[name] = value
    if load.count_statuses:
        env["BENCH_COUNT_STATUSES"] = "1"
    command = [
        wrk,
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{load.seconds}s",
        # A request queued behind slow password hashes must show up as latency,
        # not vanish as a timeout after wrk's default 2 s.
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(WRK_SCRIPT),
        load.url,
    ]
    return subprocess.Popen(  # noqa: S603
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def finish(process: subprocess.Popen[str]) -> Measurement:
    """Wait for a started wrk and parse its summary line."""
    output, _ = process.communicate()
    for line in output.splitlines():
        if line.startswith(SUMMARY_PREFIX):
            return _parse_summary(line.removeprefix(SUMMARY_PREFIX))
    raise LoadError(f"wrk exited with code {process.returncode} without a summary: {output[-500:]}")


def measure(wrk: str, load: Load) -> Measurement:
    """Run one load to completion."""
    return finish(start(wrk, load))


def _parse_summary(text: str) -> Measurement:
    """Turn the Lua script's JSON summary into a Measurement."""
    data = json.loads(text)
    return Measurement(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        socket_errors=data["connect_errors"] + data["read_errors"] + data["write_errors"],
        timeouts=data["timeouts"],
        non_2xx_3xx=data["non_2xx_3xx"],
        statuses={int(status): count for status, count in data["statuses"].items()},
    )
