"""Exercise: an empty variable (`LOG_LEVEL=`) counts as not set, so `.env` and the default apply."""

from pathlib import Path

import pytest

from app.config import Settings, SettingsError, load_settings

# Every test runs in an empty temporary directory with no setting in the
# environment (the step's clean_environment fixture): `.env` is written there.


def test_an_empty_variable_leaves_the_env_file_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("LOG_LEVEL=ERROR\n")
    monkeypatch.setenv("LOG_LEVEL", "")

    assert Settings().log_level == "ERROR"


def test_an_empty_variable_without_env_file_leaves_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "")
    monkeypatch.setenv("LOG_FORMAT", "")

    settings = Settings()

    assert (settings.log_level, settings.log_format) == ("INFO", "json")


def test_a_variable_with_a_value_still_wins_over_the_env_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("LOG_LEVEL=ERROR\n")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")

    assert Settings().log_level == "DEBUG"


def test_an_empty_secret_key_is_still_refused_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # "Not set" falls back to the development key, which production refuses.
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", "")

    with pytest.raises(SettingsError, match=r"^Setting SECRET_KEY "):
        load_settings()
