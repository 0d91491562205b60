"""Find the PostgreSQL and Redis servers a nox session needs, or start embedded ones.

For each server, in order:

1. the URL in DATABASE_URL / REDIS_URL, if set;
2. a server answering on the default local port (5432 / 6379) that lets the
   workshop in without a password;
3. an embedded server run from PyPI wheels under `.workshop/` (see tools/embedded.py).

WORKSHOP_SERVICES=embedded goes straight to 3 (CI uses it to test that path on a
machine that has both servers); WORKSHOP_SERVICES=local never goes to 3.
Only the standard library is imported: this runs in the Python that runs nox.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

from tools import embedded
from tools.embedded import HOST, ServiceError
from tools.probes import Answer, postgres_answer, redis_answer
from tools.servers import EmbeddedPostgres, EmbeddedRedis

__all__ = [
    "ServiceError",
    "Services",
    "private_redis",
    "provide",
    "redis_server_binary",
    "stop_on_termination",
]

# Module attributes rather than constants inside functions, so that the tests
# can point them at a closed port to play a machine without servers.
DEFAULT_POSTGRES_PORT = 5432
DEFAULT_REDIS_PORT = 6379
MODES = ("auto", "embedded", "local")


@dataclass(frozen=True)
class Services:
    """The servers a session uses, as URLs without a database name or number."""

    postgres: str | None
    redis: str | None

    def database_url(self, database: str) -> str:
        """Return the PostgreSQL URL for this database."""
        if self.postgres is None:
            raise ServiceError("PostgreSQL was not asked for: call provide(postgres=True).")
        return _with_path(self.postgres, database)

    def redis_url(self, db: int) -> str:
        """Return the Redis URL for this database number."""
        if self.redis is None:
            raise ServiceError("Redis was not asked for: call provide(redis=True).")
        return _with_path(self.redis, str(db))

    def __repr__(self) -> str:
        # URLs may carry passwords; a repr ends up in logs and tracebacks.
        return f"Services(postgres={_redact(self.postgres)!r}, redis={_redact(self.redis)!r})"


@dataclass(frozen=True)
class _Kind:
    """What the resolution needs to know about one kind of server."""

    name: str
    env_var: str
    schemes: tuple[str, ...]
    url_format: str
    answer: Callable[[str, int], Answer]


_POSTGRES = _Kind(
    name="PostgreSQL",
    env_var="DATABASE_URL",
    schemes=("postgresql", "postgres"),
    url_format="postgresql+asyncpg://postgres@{host}:{port}",
    answer=postgres_answer,
)
_REDIS = _Kind(
    name="Redis",
    env_var="REDIS_URL",
    schemes=("redis", "rediss"),
    url_format="redis://{host}:{port}",
    answer=redis_answer,
)


@contextlib.contextmanager
def provide(*, postgres: bool, redis: bool, persistent: bool = False) -> Iterator[Services]:
    """Resolve (and if needed start) the servers a session needs; stop what it started on exit.

    persistent: the embedded Redis also snapshots its keys to disk, as a default
    redis-server does (the embedded PostgreSQL cluster is always kept).
    """
    mode = _mode()
    with contextlib.ExitStack() as stack:
        _exit_cleanly_on_termination(stack)
        said: list[str] = []
        postgres_url = redis_url = None
        if postgres:
            postgres_url = _resolve(_POSTGRES, mode, DEFAULT_POSTGRES_PORT, stack, said, persistent)
        if redis:
            redis_url = _resolve(_REDIS, mode, DEFAULT_REDIS_PORT, stack, said, persistent)
        if said:
            print(f"services: {', '.join(said)}", file=sys.stderr, flush=True)
        yield Services(postgres=postgres_url, redis=redis_url)


def redis_server_binary() -> str:
    """Return a redis-server for the tests that start, stop and break a server of their own.

    REDIS_SERVER if set; else redis-server from PATH (unless WORKSHOP_SERVICES=embedded);
    else the embedded one, installed if needed.
    """
    explicit = os.environ.get("REDIS_SERVER")
    if explicit:
        return explicit
    mode = _mode()
    found = shutil.which("redis-server") if mode != "embedded" else None
    if found:
        return found
    if mode == "local":
        raise ServiceError(
            "WORKSHOP_SERVICES=local, but there is no redis-server on PATH: install Redis, "
            "or set REDIS_SERVER to a redis-server binary."
        )
    return str(EmbeddedRedis(embedded.home(), embedded.install_packages(embedded.home())).binary)


@contextlib.contextmanager
def private_redis(folder: Path) -> Iterator[str]:
    """Run a redis-server of the caller's own, without snapshots, and yield its URL.

    For runs that must share no server, not merely no database number: a test
    that pauses Redis (CLIENT PAUSE ... ALL) pauses every client of the server.
    The server is stopped on the way out; folder holds its log.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with socket.socket() as probe:
        # Port 0 lets the kernel pick a port nothing listens on.
        probe.bind((HOST, 0))
        port = int(probe.getsockname()[1])
    log = folder / "server.log"
    command = [
        redis_server_binary(),
        *("--bind", HOST, "--port", str(port), "--dir", str(folder)),
        *("--save", "", "--appendonly", "no"),
    ]
    with log.open("wb") as output:
        # A session of its own: Ctrl-C reaches the caller, whose `finally` stops it.
        server = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + embedded.START_TIMEOUT
        while not redis_answer(HOST, port).usable:
            if server.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise ServiceError(
                    f"A private redis-server did not start on {HOST}:{port}. "
                    f"Its log, {log}, ends with:\n{tail}"
                )
            time.sleep(0.05)
        yield f"redis://{HOST}:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _mode() -> str:
    """Read WORKSHOP_SERVICES: auto (the default), embedded or local."""
    mode = os.environ.get("WORKSHOP_SERVICES", "").strip().lower() or "auto"
    if mode not in MODES:
        raise ServiceError(
            f"WORKSHOP_SERVICES={mode!r} is not understood: use one of {', '.join(MODES)}."
        )
    return mode


def _resolve(
    kind: _Kind,
    mode: str,
    default_port: int,
    stack: contextlib.ExitStack,
    said: list[str],
    persistent: bool,
) -> str:
    """Return the server URL for one kind of server, starting the embedded one if needed."""
    note = ""
    if mode != "embedded":
        explicit = os.environ.get(kind.env_var)
        if explicit:
            url = _server_url(kind, explicit)
            said.append(f"{kind.name} from {kind.env_var} ({_address(url)})")
            return url
        answer = kind.answer(HOST, default_port)
        if answer.usable:
            said.append(f"{kind.name} on {HOST}:{default_port} (already running)")
            return kind.url_format.format(host=HOST, port=default_port)
        if mode == "local":
            raise ServiceError(
                f"WORKSHOP_SERVICES=local, but {kind.name} on {HOST}:{default_port} cannot be "
                f"used: {answer.problem}. Start it, or set {kind.env_var} to a server you have."
            )
        if answer.answered:
            note = (
                f"; the one on {HOST}:{default_port} is not used: {answer.problem}, "
                f"set {kind.env_var} to use it"
            )
    root = embedded.home()
    packages = embedded.install_packages(root)
    server = (EmbeddedPostgres if kind is _POSTGRES else EmbeddedRedis)(root, packages)
    run = stack.enter_context(embedded.running(server, persistent=persistent))
    state = "" if run.started else ", already running"
    said.append(f"{kind.name} embedded ({run.version} on {HOST}:{run.port}{state}{note})")
    return kind.url_format.format(host=HOST, port=run.port)


def _server_url(kind: _Kind, url: str) -> str:
    """Drop the database part of an explicit URL, keeping scheme, user, host, port and query."""
    parts = urlsplit(url)
    if parts.scheme.split("+")[0] not in kind.schemes or not parts.hostname:
        raise ServiceError(
            f"{kind.env_var} must be a {kind.name} URL with a host, "
            f"like {kind.url_format.format(host=HOST, port='PORT')}/NAME; it is {_redact(url)!r}."
        )
    return urlunsplit(parts._replace(path=""))


def _with_path(url: str, path: str) -> str:
    """Put a database name or number in a server URL, before any query string."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{path}"))


def _address(url: str) -> str:
    """Return the host:port of a URL, which is safe to print."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else f"{parts.hostname}"


def _redact(url: str | None) -> str | None:
    """Hide the password in a URL."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@contextlib.contextmanager
def stop_on_termination() -> Iterator[None]:
    """Treat SIGTERM and SIGHUP like Ctrl-C inside the block, so nox stops what it runs."""
    with contextlib.ExitStack() as stack:
        _exit_cleanly_on_termination(stack)
        yield


def _exit_cleanly_on_termination(stack: contextlib.ExitStack) -> None:
    """Treat SIGTERM and SIGHUP like Ctrl-C while servers run, so `finally` stops them."""
    # Ctrl-C already raises KeyboardInterrupt; a CI time-out or a closed
    # terminal sends these instead, and their default action skips `finally`.
    # KeyboardInterrupt rather than SystemExit: nox answers it by stopping the
    # command it is running (uvicorn, pytest, mkdocs serve) before the servers go.
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is signal.SIG_DFL:
            previous = signal.signal(signum, _interrupt)
            stack.callback(signal.signal, signum, previous)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    """Raise KeyboardInterrupt, as Ctrl-C would."""
    raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")
