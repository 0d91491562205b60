"""Run final/ under uvicorn as a subprocess, the way production runs it."""

import asyncio
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.processes import HOST, OwnedProcess, free_port, spawn, stop

FINAL_DIR = Path(__file__).resolve().parents[2] / "final"
# uvicorn's --timeout-graceful-shutdown: in-flight requests get this long after SIGTERM.
GRACEFUL_SHUTDOWN_SECONDS = 10
# Waiting past uvicorn's own bound means it hung: then SIGKILL.
STOP_BOUND_SECONDS = GRACEFUL_SHUTDOWN_SECONDS + 5
START_BOUND_SECONDS = 30.0
# Limits high enough that the suite's own traffic (one client address) is never
# refused; the tests about limits set their own.
UNLIMITED = "1000000/minute"


@dataclass
class Service:
    """One running instance of final/."""

    owned: OwnedProcess
    port: int

    @property
    def base_url(self) -> str:
        """Where to send requests."""
        return f"http://{HOST}:{self.port}"

    def client(self, *, timeout: float = 10.0) -> httpx.AsyncClient:
        """A client for this instance with an explicit timeout on every phase."""
        return httpx.AsyncClient(base_url=self.base_url, timeout=httpx.Timeout(timeout))

    async def stop(self) -> int:
        """SIGTERM, SIGKILL after the bound; the exit code."""
        return await stop(self.owned, grace_seconds=STOP_BOUND_SECONDS)


def service_environment(
    *, database_url: str, redis_url: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of one instance: production settings, JSON logs to the log file."""
    env = {
        # Only what the process needs: nothing from the caller's .env or shell leaks in.
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        # Production: the same start-up checks (secret length, trusted hosts) as a deployment.
        "ENVIRONMENT": "production",
        "TRUSTED_HOSTS": f"{HOST},localhost",
        "SECRET_KEY": secrets.token_hex(40),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "RATE_LIMIT": UNLIMITED,
        "LOGIN_RATE_LIMIT": UNLIMITED,
        # The faults here are PostgreSQL's and Redis's, not a burst of sign-ups:
        # every sign-up of a test's load waits for hashing instead of getting
        # the 503 that keeps a production login queue short.
        "HASH_QUEUE_LIMIT": "64",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra or {})
    return env


async def start_service(
    log_dir: Path, name: str, env: Mapping[str, str], *, port: int | None = None
) -> Service:
    """Start one uvicorn process on a free port and wait until /health/live answers."""
    port = port or free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:app",
        *("--host", HOST, "--port", str(port)),
        *("--timeout-graceful-shutdown", str(GRACEFUL_SHUTDOWN_SECONDS)),
    ]
    owned = await spawn(name, argv, cwd=FINAL_DIR, env=dict(env), log_path=log_dir / f"{name}.log")
    service = Service(owned=owned, port=port)
    await _wait_until_live(service)
    return service


async def _wait_until_live(service: Service) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_BOUND_SECONDS
    async with service.client(timeout=2.0) as client:
        while loop.time() < deadline:
            if not service.owned.is_alive():
                raise RuntimeError(
                    f"{service.owned.name} exited during start-up with code "
                    f"{service.owned.process.returncode}:\n{service.owned.log_tail()}"
                )
            try:
                if (await client.get("/health/live")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    await service.stop()
    raise RuntimeError(
        f"{service.owned.name} did not answer /health/live within {START_BOUND_SECONDS} s:\n"
        + service.owned.log_tail()
    )
