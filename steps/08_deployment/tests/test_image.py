"""The image's command and health check, run as the container would run them."""

import asyncio
from pathlib import Path

import pytest
from tests.served import (
    PROJECT_DIR,
    ImageCommand,
    Instance,
    production_environment,
    run_image_command,
)

from app.config import DEVELOPMENT_SECRET_KEY

pytestmark = pytest.mark.task("image")


async def run(argv: list[str]) -> int:
    """Run a command to its end, without its output; return its exit status."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(process.wait(), 60)


async def test_the_images_command_serves_in_production_mode(served: Instance) -> None:
    async with served.client() as client:
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")

    assert live.status_code == 200, live.text
    assert ready.status_code == 200, ready.text


async def test_the_images_health_check_passes_while_the_service_answers(served: Instance) -> None:
    assert await run(served.image.health_check) == 0, served.log()


async def test_the_images_health_check_fails_when_nothing_answers(
    image_command: ImageCommand,
) -> None:
    # No instance was started: nothing listens on the check's port.
    assert await run(image_command.health_check) != 0


async def test_the_image_refuses_to_start_with_the_development_secret_key(
    image_command: ImageCommand, database: str, tmp_path: Path
) -> None:
    env = production_environment(
        database, "redis://127.0.0.1:1/0", SECRET_KEY=DEVELOPMENT_SECRET_KEY
    )

    async with run_image_command(image_command, env, tmp_path) as instance:
        code = await instance.exit_code()

    assert code != 0, instance.log()
    assert "Setting SECRET_KEY is the development default" in instance.log(), instance.log()


def test_the_build_context_leaves_out_local_settings_and_the_tests() -> None:
    dockerignore = PROJECT_DIR / ".dockerignore"
    assert dockerignore.is_file(), "a .dockerignore beside the Dockerfile keeps .env out"
    ignored = {line.strip().rstrip("/") for line in dockerignore.read_text().splitlines()}
    # A developer's .env would otherwise be copied into the image with its secrets.
    assert {".env", "tests"} <= ignored, sorted(ignored)
