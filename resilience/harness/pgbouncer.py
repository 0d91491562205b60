"""A PgBouncer in transaction mode in front of the suite's PostgreSQL, on its own port."""

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from harness.processes import HOST, OwnedProcess, free_port, spawn, stop

START_BOUND_SECONDS = 10.0
# Debian installs it outside a normal user's PATH.
SEARCHED_DIRECTORIES = ("/usr/sbin", "/usr/local/sbin")
HOW_TO_INSTALL = (
    "PgBouncer is not installed (no `pgbouncer` on PATH or in /usr/sbin): install it "
    "with `apt-get install pgbouncer` (Debian, Ubuntu) or `brew install pgbouncer` (macOS)."
)
# Fewer server connections than final/'s pool of ten: consecutive transactions
# of one client connection land on different server connections, which is
# what breaks a driver that keeps prepared statements between transactions.
SERVER_POOL_SIZE = 2


def pgbouncer_binary() -> str | None:
    """The pgbouncer binary on PATH or where Debian puts it, or None."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *SEARCHED_DIRECTORIES])
    return shutil.which("pgbouncer", path=path)


def config(server: URL, port: int, auth_file: Path) -> str:
    """pgbouncer.ini: one database, transaction pooling, trust on the loopback address."""
    target = f"host={server.host} port={server.port or 5432} dbname={server.database}"
    if server.password:
        target += f" password={server.password}"
    return "\n".join(
        [
            "[databases]",
            f"{server.database} = {target}",
            "[pgbouncer]",
            f"listen_addr = {HOST}",
            f"listen_port = {port}",
            # No Unix socket: nothing of ours outside the temporary directory.
            "unix_socket_dir =",
            # Only 127.0.0.1 can reach it, and the suite's PostgreSQL trusts it too.
            "auth_type = trust",
            f"auth_file = {auth_file}",
            "pool_mode = transaction",
            f"default_pool_size = {SERVER_POOL_SIZE}",
            "max_client_conn = 200",
            "",
        ]
    )


@dataclass
class PgBouncer:
    """One pgbouncer process, its configuration in its own directory."""

    binary: str
    directory: Path
    log_dir: Path
    name: str
    server_url: str
    port: int = 0
    owned: OwnedProcess | None = None

    @property
    def url(self) -> str:
        """DATABASE_URL for the service: the same database, through PgBouncer."""
        through = make_url(self.server_url).set(host=HOST, port=self.port)
        return through.render_as_string(hide_password=False)

    async def start(self) -> None:
        """Write the ini and the user list, start pgbouncer, and wait until it accepts."""
        server = make_url(self.server_url)
        self.port = free_port()
        auth_file = self.directory / "userlist.txt"
        auth_file.write_text(f'"{server.username}" "{server.password or ""}"\n')
        ini = self.directory / "pgbouncer.ini"
        ini.write_text(config(server, self.port, auth_file))
        argv = [self.binary, str(ini)]
        if os.geteuid() == 0:
            # PgBouncer refuses to run as root; it reads its files before switching.
            argv[1:1] = ["-u", "nobody"]
        self.owned = await spawn(
            self.name, argv, cwd=self.directory, env={}, log_path=self.log_dir / f"{self.name}.log"
        )
        await self._wait_until_listening()

    async def stop(self) -> None:
        """SIGTERM, SIGKILL after a bound."""
        if self.owned is not None:
            await stop(self.owned, grace_seconds=5.0)

    async def _wait_until_listening(self) -> None:
        assert self.owned is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_BOUND_SECONDS
        while loop.time() < deadline:
            if not self.owned.is_alive():
                raise RuntimeError(f"{self.name} exited:\n{self.owned.log_tail()}")
            try:
                _, writer = await asyncio.open_connection(HOST, self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return
        raise RuntimeError(f"{self.name} did not listen on {self.port}:\n{self.owned.log_tail()}")
