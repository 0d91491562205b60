"""Exercise: settings are also read from files in SECRETS_DIR, the environment winning."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import app
from app.config import Settings

PROJECT_DIR = Path(app.__file__).resolve().parents[1]


def run_app(cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m app` in production with only the given settings in its environment."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env.pop("SECRETS_DIR", None)
    env.update(ENVIRONMENT="production", PYTHONPATH=str(PROJECT_DIR), **settings)
    return subprocess.run(
        [sys.executable, "-m", "app"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def shown(stdout: str) -> dict[str, str]:
    """The settings printout as {NAME: value}."""
    return dict(line.split(maxsplit=1) for line in stdout.splitlines())


def test_a_secret_key_in_a_file_of_secrets_dir_is_read(tmp_path: Path) -> None:
    # A Kubernetes secret volume or a Docker secret: one file per setting, named after it.
    (tmp_path / "secret_key").write_text(secrets.token_urlsafe(48) + "\n")
    (tmp_path / "database_url").write_text("postgresql+asyncpg://app:hunter2@db:5432/users\n")

    result = run_app(tmp_path, SECRETS_DIR=str(tmp_path))

    # Without the file, production refuses the development key: exit status 2.
    assert result.returncode == 0, result.stderr
    assert (
        shown(result.stdout)["DATABASE_URL"] == "postgresql+asyncpg://app:**********@db:5432/users"
    )
    assert "hunter2" not in result.stdout


def test_the_environment_wins_over_a_file(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text(secrets.token_urlsafe(48))

    result = run_app(tmp_path, SECRETS_DIR=str(tmp_path), **{"SECRET_KEY": "short-secret"})

    assert result.returncode == 2, result.stdout
    assert "Setting SECRET_KEY is too short" in result.stderr


def test_without_secrets_dir_nothing_changes(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text(secrets.token_urlsafe(48))

    result = run_app(tmp_path)

    assert result.returncode == 2, result.stdout
    assert "Setting SECRET_KEY is the development default" in result.stderr
