"""Exercise: the database URL is a secret, yet `python -m app` still shows where it points."""

from pathlib import Path

import pytest
from tests.test_cli import run_app

from app.config import Settings, SettingsError, load_settings

URL = "postgresql+asyncpg://app:hunter2-password@db.internal:5432/users"


def test_a_json_dump_of_the_settings_hides_the_database_password() -> None:
    settings = Settings(database_url=URL)

    assert "hunter2-password" not in settings.model_dump_json()


def test_python_m_app_masks_only_the_password(tmp_path: Path) -> None:
    result = run_app(tmp_path, DATABASE_URL=URL)

    assert result.returncode == 0, result.stderr
    assert "postgresql+asyncpg://app:**********@db.internal:5432/users" in result.stdout
    assert "hunter2-password" not in result.stdout


def test_a_wrong_scheme_is_still_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:hunter2-password@db/users")

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert str(caught.value) == (
        "Setting DATABASE_URL has the wrong scheme: it must start with "
        "postgresql+asyncpg:// (the async driver the service uses)."
    )
