"""Where a request's CPU time goes: py-spy samples of a server under a bounded wrk load.

Requests per second move with whatever else the machine runs; the share of
a process's samples spent in each layer, and its CPU time per request, do
much less. `python bench/run.py --profile --only me_cached,health_live` runs
each scenario's load twice at a few connections: once to read the server's
CPU time per request (user and kernel, from /proc), once while py-spy samples
it. Every sample goes to the layer of its innermost frame that belongs to one
(a Redis call made by a dependency counts as Redis), and each layer gets its
share of the user-space time per request.

py-spy pauses the process to read each sample, and the pauses land on
system calls far more often than the time spent in them warrants (a socket
write took 60% of the samples but the kernel only 15% of the CPU): so the
samples taken inside socket system calls are left out of the shares, and the
kernel's time is shown as measured.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import load
from servers import Server

# (layer, pattern on one py-spy frame "function (module/path.py:line)"). A sample
# belongs to the layer of its innermost frame that any pattern matches; frames
# no pattern matches (asyncio, json, datetime, C code) belong to whoever called
# them. A sample no frame matches is the event loop's own.
LAYERS: tuple[tuple[str, str], ...] = (
    ("log record (logging, app.logging)", r"\(logging/__init__\.py|\(app/logging\.py"),
    ("metrics (prometheus_client)", r"\(prometheus_client/"),
    ("JWT check (PyJWT, app.security)", r"\(jwt/|\(app/security\.py"),
    ("Redis reply parsing (redis-py parsers, hiredis)", r"\(redis/_parsers/|hiredis"),
    ("Redis command, pool and socket I/O (redis-py)", r"\(redis/"),
    ("PostgreSQL (SQLAlchemy, asyncpg)", r"\(sqlalchemy/|\(asyncpg/"),
    (
        "response validation and serialisation (FastAPI, pydantic, Response)",
        r"serialize_response|_prepare_response_content|jsonable_encoder|\(pydantic|"
        r"\(starlette/responses\.py",
    ),
    ("FastAPI dependency solving", r"\(fastapi/dependencies/"),
    ("rate limit and session marker code (app)", r"\(app/(limit_policy|session_markers|ratelimit)"),
    (
        "route and token check code (app.deps, app.routes)",
        r"\(app/(deps|routes/|user_reads|cache|state)",
    ),
    ("guard middleware (Host, body size, 500)", r"RequestGuardMiddleware|guarded_send|_host_"),
    ("observer middleware (request id, headers, timing)", r"\(app/middleware\.py"),
    (
        "FastAPI's and Starlette's own ASGI layers (errors, telemetry, body limit, exit stack)",
        r"\(fastapi/(telemetry|_body_limit|middleware|applications)|"
        r"\(starlette/(middleware|_exception_handler|applications)",
    ),
    ("routing and request handling (FastAPI, Starlette)", r"\((fastapi|starlette)/routing\.py"),
    ("uvicorn HTTP protocol (httptools parsing, writing)", r"\(uvicorn/(protocols|middleware)/"),
)
EVENT_LOOP = "event loop, asyncio transports, native"
# --native samples every thread, waiting or not: a thread blocked in one of
# these (idle pool threads, the log writer's sleep, epoll with nothing ready) is
# not spending CPU, and its sample is dropped.
_IDLE = re.compile(
    r"PyThread_acquire_lock_timed|pthread_cond_(timed)?wait|epoll_pwait|"
    r"_queue_SimpleQueue_get|Event\.wait|Condition\.wait"
)
IDLE = "idle"
# The kernel's side of a socket read or write (loopback TCP to wrk or Redis),
# shown apart from the Python that asked for it.
_SYSCALL = re.compile(r"^(write|writev|read|recv|recvfrom|send|sendto|sendmsg) \(libc")
SYSCALL = ": the socket system calls"


def sample_layer(stack: str) -> str:
    """The layer of one collapsed py-spy stack (frames root first, separated by ';')."""
    frames = stack.split(";")
    if any(_IDLE.search(frame) for frame in frames[-4:]):
        return IDLE
    suffix = SYSCALL if _SYSCALL.search(frames[-1]) else ""
    for frame in reversed(frames):
        for layer, pattern in _COMPILED:
            if pattern.search(frame):
                return layer + suffix
    return EVENT_LOOP + suffix


_COMPILED = tuple((layer, re.compile(pattern)) for layer, pattern in LAYERS)


def find_py_spy() -> str:
    """Return py-spy's path, next to this Python or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise load.LoadError("py-spy is not installed: `pip install py-spy` (it is on PyPI).")
    return found


def profile(
    wrk: str, server: Server, main_load: load.Load, *, seconds: int, raw: Path, rate: int = 500
) -> tuple[Counter[str], float, float, int]:
    """Sample the server under the load; return samples per layer, user and kernel CPU seconds
    and the requests served while they were measured.

    The samples stay in `raw`, one collapsed stack per line (what flame graph tools read).
    """
    py_spy = find_py_spy()
    # First a run without the sampler, for the CPU time per request: py-spy
    # pauses the process for each sample, which costs it time but not shares.
    before = _user_and_system(server.process.pid)
    clean = load.measure(wrk, replace(main_load, seconds=seconds))
    after = _user_and_system(server.process.pid)
    user, system = after[0] - before[0], after[1] - before[1]
    requests = clean.requests

    running = load.start(wrk, replace(main_load, seconds=seconds + 2))
    time.sleep(1.0)  # past wrk's connection set-up
    sampler = subprocess.run(  # noqa: S603
        [
            py_spy,
            "record",
            "--pid",
            str(server.process.pid),
            "--duration",
            str(seconds),
            "--rate",
            str(rate),
            "--format",
            "raw",
            # C frames too: uvloop, httptools and hiredis show as themselves.
            "--native",
            "--output",
            str(raw),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    load.finish(running)
    if sampler.returncode != 0 or not raw.exists():
        raise load.LoadError(f"py-spy failed: {sampler.stderr.strip()[-400:]}")
    samples: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            samples[sample_layer(stack)] += int(count)
    del samples[IDLE]
    return samples, user, system, requests


def _user_and_system(pid: int) -> tuple[float, float]:
    """CPU seconds a process has spent in user space and in the kernel so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def print_breakdown(
    name: str, samples: Counter[str], user: float, system: float, requests: int
) -> None:
    """Print one scenario's table: each layer's share of user time, and µs of CPU per request."""
    if not requests:
        print(f"\n{name}: no request was answered")
        return
    user_us, system_us = user / requests * 1e6, system / requests * 1e6
    in_python = {layer: n for layer, n in samples.items() if not layer.endswith(SYSCALL)}
    total = sum(in_python.values()) or 1
    print(
        f"\n{name}: {requests} requests, {user_us + system_us:.0f} µs of CPU per request "
        f"({system_us:.0f} of them in the kernel); {total} samples in user space"
    )
    print("| layer | share of user time | µs per request |\n|---|---:|---:|")
    for layer, count in sorted(in_python.items(), key=lambda item: -item[1]):
        share = count / total
        print(f"| {layer} | {share:.1%} | {share * user_us:.0f} |")
    print(f"| the kernel: socket system calls, scheduling (from /proc) | | {system_us:.0f} |")
