"""Exercise: REQUEST_TIMEOUT_SECONDS, a positive finite number of seconds, 10 by default."""

from pathlib import Path

import pytest
from tests.test_cli import run_app, shown_settings

from app.config import SettingsError, load_settings


def test_the_default_is_ten_seconds_and_python_m_app_shows_it(tmp_path: Path) -> None:
    result = run_app(tmp_path)

    assert result.returncode == 0, result.stderr
    assert float(shown_settings(result.stdout)["REQUEST_TIMEOUT_SECONDS"]) == 10


@pytest.mark.parametrize(("value", "seconds"), [("2.5", 2.5), ("30", 30), (" 1 ", 1)])
def test_a_positive_number_is_accepted(
    monkeypatch: pytest.MonkeyPatch, value: str, seconds: float
) -> None:
    monkeypatch.setenv("REQUEST_TIMEOUT_SECONDS", value)

    assert load_settings().request_timeout_seconds == seconds


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf", "nan"])
def test_anything_else_stops_with_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("REQUEST_TIMEOUT_SECONDS", value)

    with pytest.raises(SettingsError) as caught:
        load_settings()

    message = str(caught.value)
    assert message.startswith("Setting REQUEST_TIMEOUT_SECONDS "), message
    assert message.endswith(".")
    assert len(message.splitlines()) == 1, message
