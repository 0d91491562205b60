"""`python -m app`: the effective settings, or one line and exit status 2."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import app
from app.config import DEVELOPMENT_SECRET_KEY, Settings

pytestmark = pytest.mark.task("cli")

# The project under test, found from its package: the learner check runs these
# tests against a learner's app/ elsewhere.
PROJECT_DIR = Path(app.__file__).resolve().parents[1]


def run_app(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m app` with only the given settings in its environment."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name.lower() not in Settings.model_fields
    }
    env.update(settings)
    # PYTHONPATH finds `app`; the temporary working directory has no `.env` to read.
    env["PYTHONPATH"] = str(PROJECT_DIR)
    return subprocess.run(
        [sys.executable, "-m", "app"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def shown_settings(stdout: str) -> dict[str, str]:
    """Read the settings printout as {NAME: value}, whatever the column width."""
    return dict(line.split(maxsplit=1) for line in stdout.splitlines())


def test_prints_each_setting_on_its_own_line_with_the_secret_masked(tmp_path: Path) -> None:
    result = run_app(tmp_path, LOG_LEVEL="debug", CORS_ORIGINS="https://app.example.com")

    assert result.returncode == 0, result.stderr
    lines = shown_settings(result.stdout)
    assert list(lines) == [name.upper() for name in Settings.model_fields]
    assert lines["LOG_LEVEL"] == "DEBUG"
    assert lines["CORS_ORIGINS"] == "https://app.example.com"
    assert lines["SECRET_KEY"] == "**********"
    assert DEVELOPMENT_SECRET_KEY not in result.stdout


def test_masks_the_password_in_the_database_url(tmp_path: Path) -> None:
    result = run_app(tmp_path, DATABASE_URL="postgresql+asyncpg://app:hunter2@db:5432/users")

    assert result.returncode == 0, result.stderr
    assert "postgresql+asyncpg://app:**********@db:5432/users" in result.stdout
    assert "hunter2" not in result.stdout


def test_reads_the_env_file_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LOG_FORMAT=console\n")

    result = run_app(tmp_path)

    assert result.returncode == 0, result.stderr
    assert shown_settings(result.stdout)["LOG_FORMAT"] == "console"


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"ENVIRONMENT": "production", "SECRET_KEY": "short-secret"},
            "Setting SECRET_KEY is too short: it must be at least 32 bytes in production.",
        ),
        (
            {"REDIS_URL": "memcached://localhost"},
            "Setting REDIS_URL has the wrong scheme: it must start with redis:// or rediss://.",
        ),
    ],
)
def test_bad_value_prints_one_line_to_stderr_and_exits_2(
    tmp_path: Path, settings: dict[str, str], expected: str
) -> None:
    result = run_app(tmp_path, **settings)

    assert result.returncode == 2, result.stdout
    assert result.stderr == expected + "\n"
    assert result.stdout == ""
    assert "short-secret" not in result.stderr
