"""The service as its image runs it: the Dockerfile's command, in a process of its own."""

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

import app
from app.config import Settings

# The project under test, found from its package: the learner check runs these
# tests against a learner's app/ elsewhere.
PROJECT_DIR = Path(app.__file__).resolve().parents[1]
HOST = "127.0.0.1"
# Bounds on a hang, never timings: polls 50 ms apart, a process that does not
# start or stop within these is stuck.
START_BOUND_SECONDS = 30.0
STOP_BOUND_SECONDS = 60.0
_POLL_SECONDS = 0.05


def dockerfile_instruction(keyword: str) -> str:
    """The arguments of the Dockerfile's last `keyword` instruction, continuation lines joined."""
    dockerfile = PROJECT_DIR / "Dockerfile"
    if not dockerfile.is_file():
        pytest.fail(
            f"Step 08 expects a Dockerfile beside app/ ({dockerfile}): the image these tests run.",
            pytrace=False,
        )
    text = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")
    found = [
        line.strip()[len(keyword) :].strip()
        for line in text.splitlines()
        if line.strip().upper().startswith(keyword + " ")
    ]
    if not found:
        pytest.fail(f"The Dockerfile has no {keyword} instruction.", pytrace=False)
    return found[-1]


def exec_form(arguments: str, keyword: str) -> list[str]:
    """The argv of an exec-form (JSON array) command: a shell would swallow SIGTERM."""
    try:
        argv = json.loads(arguments)
    except json.JSONDecodeError:
        argv = None
    if not (isinstance(argv, list) and argv and all(isinstance(arg, str) for arg in argv)):
        pytest.fail(
            f"The Dockerfile's {keyword} is not in exec form (a JSON array).", pytrace=False
        )
    return argv


def option(argv: list[str], name: str) -> str:
    """The value given to a command-line option (`--port 8000` or `--port=8000`)."""
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg.partition("=")[2]
    pytest.fail(f"The image's command has no {name}: {argv}", pytrace=False)


def free_port() -> int:
    """A port nothing listens on, handed out by the operating system."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class ImageCommand:
    """The image's CMD and HEALTHCHECK, pointed at a local port instead of the container's."""

    command: list[str]
    health_check: list[str]
    graceful_shutdown_seconds: float
    port: int

    @classmethod
    def from_dockerfile(cls, port: int) -> "ImageCommand":
        """Read both commands from the Dockerfile; run them with this interpreter."""
        command = exec_form(dockerfile_instruction("CMD"), "CMD")
        if command[0] != "uvicorn":
            pytest.fail(f"The image's command does not start uvicorn: {command}", pytrace=False)
        image_port = option(command, "--port")
        graceful = float(option(command, "--timeout-graceful-shutdown"))
        local = [sys.executable, "-m", *command]
        local[local.index(option(command, "--host"), 3)] = HOST
        local[local.index(image_port, 3)] = str(port)
        _, _, check = dockerfile_instruction("HEALTHCHECK").partition("CMD")
        health = exec_form(check.strip(), "HEALTHCHECK")
        if health[0] in {"python", "python3"}:
            health = [sys.executable, *health[1:]]
        # The check asks the container's own port; here that is this instance's.
        health = [arg.replace(f":{image_port}/", f":{port}/") for arg in health]
        return cls(
            command=local, health_check=health, graceful_shutdown_seconds=graceful, port=port
        )


def production_environment(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """A production instance's environment: no setting inherited from the caller's shell."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name.lower() not in Settings.model_fields
    }
    env.update(
        PYTHONPATH=str(PROJECT_DIR),
        PYTHONUNBUFFERED="1",
        ENVIRONMENT="production",
        SECRET_KEY=secrets.token_urlsafe(48),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        TRUSTED_HOSTS=f"{HOST},localhost",
        # One client signs up: no limit may refuse it, and hashing stays cheap.
        RATE_LIMIT="1000000/minute",
        LOGIN_RATE_LIMIT="1000000/minute",
        ARGON2_TIME_COST="1",
        ARGON2_MEMORY_KIB="1024",
        ARGON2_PARALLELISM="1",
    )
    env.update(extra)
    return env


@dataclass
class Instance:
    """One running process of the image's command, with what it has written so far."""

    process: asyncio.subprocess.Process
    image: ImageCommand
    output: list[str] = field(default_factory=list)
    reader: "asyncio.Task[None] | None" = None

    @property
    def base_url(self) -> str:
        """Where to send requests."""
        return f"http://{HOST}:{self.image.port}"

    def client(self, *, timeout: float = 30.0) -> httpx.AsyncClient:
        """A client for this instance, with a bound on every phase of a request."""
        return httpx.AsyncClient(base_url=self.base_url, timeout=timeout)

    def log(self) -> str:
        """Everything the process has written (stdout and stderr), for a failure's message."""
        return "".join(self.output)

    async def wait_for_output(self, text: str) -> None:
        """Poll the output until it holds `text`; fail if the process ends or hangs first."""
        for _ in range(int(START_BOUND_SECONDS / _POLL_SECONDS)):
            if text in self.log():
                return
            await asyncio.sleep(_POLL_SECONDS)
        pytest.fail(f"The service never wrote {text!r}:\n{self.log()}", pytrace=False)

    async def wait_until_live(self) -> None:
        """Poll /health/live until it answers 200; fail with the log if it never does."""
        async with self.client(timeout=2.0) as client:
            for _ in range(int(START_BOUND_SECONDS / _POLL_SECONDS)):
                if self.process.returncode is not None:
                    break
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/health/live")).status_code == 200:
                        return
                await asyncio.sleep(_POLL_SECONDS)
        pytest.fail(f"The service did not start:\n{self.log()}", pytrace=False)

    async def exit_code(self) -> int:
        """Wait for the process to end (bounded: a hang fails the test) and return its code."""
        try:
            code = await asyncio.wait_for(self.process.wait(), STOP_BOUND_SECONDS)
        except TimeoutError:
            pytest.fail(f"The service did not stop:\n{self.log()}", pytrace=False)
        if self.reader is not None:
            await self.reader  # the last lines it wrote
        return code

    async def _collect(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.output.append(line.decode(errors="replace"))


@contextlib.asynccontextmanager
async def run_image_command(
    image: ImageCommand, env: dict[str, str], cwd: Path
) -> AsyncIterator[Instance]:
    """Start the image's command, yield it once it has started, and stop it after."""
    process = await asyncio.create_subprocess_exec(
        *image.command,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    instance = Instance(process=process, image=image)
    instance.reader = asyncio.create_task(instance._collect())
    try:
        yield instance
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_BOUND_SECONDS)
            except TimeoutError:
                process.kill()
                await process.wait()
        await instance.reader
