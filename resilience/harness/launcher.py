"""Start the processes one test needs, and stop every one of them after it."""

from collections.abc import Mapping
from pathlib import Path

from harness.pgbouncer import PgBouncer
from harness.redis_server import RedisServer
from harness.service import Service, service_environment, start_service


class Launcher:
    """Starts services and dedicated Redis servers for one test, and stops them all after it."""

    def __init__(self, log_dir: Path, db_url: str, shared_redis_url: str, test: str) -> None:
        self.log_dir = log_dir
        self.db_url = db_url
        self.shared_redis_url = shared_redis_url
        self.test = test
        self.services: list[Service] = []
        self.redis_servers: list[RedisServer] = []
        self.poolers: list[PgBouncer] = []

    async def redis(self, name: str = "redis") -> RedisServer:
        """A dedicated, running redis-server on its own port."""
        server = RedisServer(log_dir=self.log_dir, name=f"{self.test}-{name}")
        self.redis_servers.append(server)
        await server.start()
        return server

    async def pgbouncer(self, binary: str, name: str = "pgbouncer") -> PgBouncer:
        """A running PgBouncer in transaction mode in front of the suite's database."""
        directory = self.log_dir / f"{self.test}-{name}"
        directory.mkdir()
        pooler = PgBouncer(
            binary=binary,
            directory=directory,
            log_dir=self.log_dir,
            name=f"{self.test}-{name}",
            server_url=self.db_url,
        )
        self.poolers.append(pooler)
        await pooler.start()
        return pooler

    async def service(
        self,
        name: str = "app",
        *,
        redis_url: str | None = None,
        database_url: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> Service:
        """A running final/ instance (the suite's database and shared Redis unless told)."""
        env = service_environment(
            database_url=database_url or self.db_url,
            redis_url=redis_url or self.shared_redis_url,
            extra=extra,
        )
        service = await start_service(self.log_dir, f"{self.test}-{name}", env)
        self.services.append(service)
        return service

    async def close(self, *, show_logs: bool) -> None:
        """Stop every service, then the servers behind them; print their logs if the test failed."""
        for service in self.services:
            await service.stop()
        for server in self.redis_servers:
            await server.stop()
        for pooler in self.poolers:
            await pooler.stop()
        if show_logs:
            backing = [*self.redis_servers, *self.poolers]
            for owned in [s.owned for s in self.services] + [
                b.owned for b in backing if b.owned is not None
            ]:
                print(f"----- {owned.name} (exit {owned.process.returncode}) -----")
                print(owned.log_tail())
