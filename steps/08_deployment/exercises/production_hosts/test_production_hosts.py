"""Exercise: production refuses TRUSTED_HOSTS=* and CORS_ORIGINS=*, each in one line."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

import app
from app.config import Settings

PROJECT_DIR = Path(app.__file__).resolve().parents[1]


def run_app(cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m app` with a valid production secret and only the given settings."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env.update(SECRET_KEY=secrets.token_urlsafe(48), PYTHONPATH=str(PROJECT_DIR), **settings)
    return subprocess.run(
        [sys.executable, "-m", "app"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "setting", [{"TRUSTED_HOSTS": "*"}, {"TRUSTED_HOSTS": "api.example.com,*"}], ids=str
)
def test_production_refuses_any_host(tmp_path: Path, setting: dict[str, str]) -> None:
    result = run_app(tmp_path, ENVIRONMENT="production", **setting)

    assert result.returncode == 2, result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith("Setting TRUSTED_HOSTS "), line
    assert "production" in line, line


def test_production_refuses_any_origin(tmp_path: Path) -> None:
    result = run_app(tmp_path, ENVIRONMENT="production", CORS_ORIGINS="*")

    assert result.returncode == 2, result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith("Setting CORS_ORIGINS "), line
    assert "production" in line, line


def test_production_accepts_named_hosts_and_origins(tmp_path: Path) -> None:
    result = run_app(
        tmp_path,
        ENVIRONMENT="production",
        TRUSTED_HOSTS="api.example.com,*.example.com",
        CORS_ORIGINS="https://app.example.com",
    )

    assert result.returncode == 0, result.stderr


def test_development_still_accepts_any_host_and_origin(tmp_path: Path) -> None:
    result = run_app(tmp_path, ENVIRONMENT="development", TRUSTED_HOSTS="*", CORS_ORIGINS="*")

    assert result.returncode == 0, result.stderr
