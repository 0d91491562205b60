"""Settings: defaults, sources and their precedence, validation, and the secret kept secret."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from app.config import (
    DEVELOPMENT_SECRET_KEY,
    Settings,
    SettingsError,
    describe_validation_error,
    get_settings,
    load_settings,
)

pytestmark = pytest.mark.task("settings")

PRODUCTION_SECRET = "a-production-secret-that-is-long-enough-0123456789"
TWO_ORIGINS = ["https://app.example.com", "http://localhost:3000"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Start every test from no setting in the environment and no `.env` file."""
    # Names are case-insensitive, so "database_url" would be read as well.
    setting_names = set(Settings.model_fields)
    for name in list(os.environ):
        if name.lower() in setting_names:
            monkeypatch.delenv(name)
    # `.env` is read from the working directory; a fresh temporary one has none.
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def error_line(**values: object) -> str:
    """Return the one-line message for settings that must fail validation."""
    return error_line_for(values)


def error_line_for(data: object) -> str:
    """Return the message for input that is not settings at all."""
    with pytest.raises(ValidationError) as caught:
        Settings.model_validate(data)
    return describe_validation_error(caught.value)


def test_defaults_are_for_local_development() -> None:
    settings = Settings()

    assert settings.environment == "development"
    assert settings.database_url == "postgresql+asyncpg://postgres@127.0.0.1:5432/workshop"
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.secret_key.get_secret_value() == DEVELOPMENT_SECRET_KEY
    assert settings.log_level == "INFO"
    assert settings.log_format == "json"
    assert settings.cors_origins == []
    assert settings.trusted_hosts == ["localhost", "127.0.0.1", "test"]


@pytest.mark.task("database-settings")
def test_database_and_hashing_defaults_are_production_values() -> None:
    settings = Settings()

    assert settings.db_pool_size == 10
    assert settings.db_pool_timeout_seconds == 5.0
    assert settings.db_connect_timeout_seconds == 5.0
    assert settings.db_statement_timeout_ms == 5000
    assert settings.health_check_timeout_seconds == 1.0
    # pwdlib's Argon2id default: m=64 MiB, t=3, p=4.
    assert (settings.argon2_memory_kib, settings.argon2_time_cost) == (65_536, 3)
    assert settings.argon2_parallelism == 4


@pytest.mark.task("database-settings")
def test_database_settings_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "20")
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "250")
    monkeypatch.setenv("HEALTH_CHECK_TIMEOUT_SECONDS", "0.5")

    settings = Settings()

    assert settings.db_pool_size == 20
    assert settings.db_statement_timeout_ms == 250
    assert settings.health_check_timeout_seconds == 0.5


def test_environment_variables_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://app@db.internal:5432/users")
    monkeypatch.setenv("REDIS_URL", "rediss://cache.internal:6380/1")
    monkeypatch.setenv("SECRET_KEY", PRODUCTION_SECRET)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    monkeypatch.setenv("LOG_FORMAT", "console")

    settings = Settings()

    assert settings.environment == "production"
    assert settings.database_url == "postgresql+asyncpg://app@db.internal:5432/users"
    assert settings.redis_url == "rediss://cache.internal:6380/1"
    assert settings.secret_key.get_secret_value() == PRODUCTION_SECRET
    assert settings.log_level == "WARNING"
    assert settings.log_format == "console"


def test_env_file_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LOG_LEVEL=ERROR\nREDIS_URL=redis://cache:6379/2\n")

    settings = Settings()

    assert settings.log_level == "ERROR"
    assert settings.redis_url == "redis://cache:6379/2"


def test_environment_variable_wins_over_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("LOG_LEVEL=ERROR\n")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")

    assert Settings().log_level == "DEBUG"


def test_unknown_variables_in_env_file_are_ignored(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SOMETHING_ELSE=1\nLOG_FORMAT=console\n")

    assert Settings().log_format == "console"


@pytest.mark.parametrize("name", ["log_level", "Log_Level", "LOG_LEVEL"])
def test_variable_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "DEBUG")

    assert Settings().log_level == "DEBUG"


@pytest.mark.parametrize("value", ["debug", "Debug", " DEBUG "])
def test_log_level_value_is_case_insensitive(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("LOG_LEVEL", value)

    assert Settings().log_level == "DEBUG"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://app.example.com,http://localhost:3000", TWO_ORIGINS),
        (" https://app.example.com , http://localhost:3000 ", TWO_ORIGINS),
        ('["https://app.example.com", "http://localhost:3000"]', TWO_ORIGINS),
        ("https://app.example.com", ["https://app.example.com"]),
        ("", []),
        ("[]", []),
    ],
)
def test_cors_origins_accept_comma_separated_and_json_lists(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("CORS_ORIGINS", value)

    assert Settings().cors_origins == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("api.example.com,*.example.com", ["api.example.com", "*.example.com"]),
        ('["api.example.com", "*"]', ["api.example.com", "*"]),
    ],
)
def test_trusted_hosts_accept_comma_separated_and_json_lists(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("TRUSTED_HOSTS", value)

    assert Settings().trusted_hosts == expected


@pytest.mark.task("rate-limit")
def test_rate_limit_and_trusted_proxies_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT", " 20 / second ")
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8, 2001:db8::1")

    settings = Settings(_env_file=None)

    assert (settings.rate_limit.count, settings.rate_limit.period_seconds) == (20, 1)
    assert [str(network) for network in settings.trusted_proxies] == [
        "10.0.0.0/8",
        "2001:db8::1/128",
    ]


def test_redis_url_with_tls_is_accepted() -> None:
    assert Settings(redis_url="rediss://cache:6380/0").redis_url == "rediss://cache:6380/0"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"database_url": "postgresql://postgres@127.0.0.1/workshop"},
            "Setting DATABASE_URL has the wrong scheme: it must start with "
            "postgresql+asyncpg:// (the async driver the service uses).",
        ),
        (
            {"redis_url": "http://localhost:6379/0"},
            "Setting REDIS_URL has the wrong scheme: it must start with redis:// or rediss://.",
        ),
        (
            {"environment": "staging"},
            "Setting ENVIRONMENT is not valid: input should be "
            "'development', 'test' or 'production'.",
        ),
        (
            {"log_level": "LOUD"},
            "Setting LOG_LEVEL is not valid: input should be "
            "'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'.",
        ),
        (
            {"log_format": "xml"},
            "Setting LOG_FORMAT is not valid: input should be 'json' or 'console'.",
        ),
        (
            {"cors_origins": "https://app.example.com/"},
            "Setting CORS_ORIGINS has an entry that is not an origin: each must be * or "
            "scheme://host[:port], with no path and no trailing slash.",
        ),
        (
            {"cors_origins": '["https://app.example.com"'},
            "Setting CORS_ORIGINS is not a valid JSON list: write it as a JSON list "
            "or as comma-separated values.",
        ),
        (
            {"trusted_hosts": " , "},
            "Setting TRUSTED_HOSTS is empty: name at least one host, or * for any host "
            "(with none, every request would get 400).",
        ),
        (
            {"trusted_hosts": "api.*.example.com"},
            "Setting TRUSTED_HOSTS has an invalid entry: each must be a host name, "
            "*.domain for its subdomains, or * for any host.",
        ),
    ],
)
def test_invalid_value_gives_one_line_naming_the_setting(
    values: dict[str, object], expected: str
) -> None:
    assert error_line(**values) == expected


@pytest.mark.task("database-settings")
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"rate_limit": "100 per minute"},
            "Setting RATE_LIMIT is not a rate: it must look like 5/minute: a positive "
            "count per second, minute or hour.",
        ),
        (
            {"rate_limit": "0/minute"},
            "Setting RATE_LIMIT is not a rate: it must look like 5/minute: a positive "
            "count per second, minute or hour.",
        ),
        (
            {"trusted_proxies": "10.0.0.1,proxy.internal"},
            "Setting TRUSTED_PROXIES has an entry that is not an address or a network: "
            "each must be like 10.0.0.1 or 10.0.0.0/8.",
        ),
        (
            {"redis_socket_timeout_seconds": "0"},
            "Setting REDIS_SOCKET_TIMEOUT_SECONDS is not valid: input should be greater than 0.",
        ),
        (
            # Past Redis's range of expiry times, every cache write would fail.
            {"cache_ttl_seconds": "1e17"},
            "Setting CACHE_TTL_SECONDS is not valid: input should be less than or equal to 86400.",
        ),
        (
            {"db_pool_size": "0"},
            "Setting DB_POOL_SIZE is not valid: input should be greater than or equal to 1.",
        ),
        (
            {"db_pool_size": "201"},
            "Setting DB_POOL_SIZE is not valid: input should be less than or equal to 200.",
        ),
        (
            {"db_pool_timeout_seconds": "0"},
            "Setting DB_POOL_TIMEOUT_SECONDS is not valid: input should be greater than 0.",
        ),
        (
            {"db_connect_timeout_seconds": "soon"},
            "Setting DB_CONNECT_TIMEOUT_SECONDS is not valid: input should be a valid "
            "number, unable to parse string as a number.",
        ),
        (
            {"db_statement_timeout_ms": "0"},
            "Setting DB_STATEMENT_TIMEOUT_MS is not valid: input should be greater than or "
            "equal to 1.",
        ),
        (
            {"health_check_timeout_seconds": "-1"},
            "Setting HEALTH_CHECK_TIMEOUT_SECONDS is not valid: input should be greater than 0.",
        ),
        (
            {"argon2_memory_kib": "8"},
            "Setting ARGON2_MEMORY_KIB is not valid: input should be greater than or equal to 64.",
        ),
    ],
)
def test_invalid_database_or_hashing_value_gives_one_line_naming_the_setting(
    values: dict[str, object], expected: str
) -> None:
    assert error_line(**values) == expected


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        (
            DEVELOPMENT_SECRET_KEY,
            "Setting SECRET_KEY is the development default: production needs its own random key.",
        ),
        (
            "",
            "Setting SECRET_KEY is empty: production needs a random key of at least 32 bytes.",
        ),
        (
            "x" * 31,
            "Setting SECRET_KEY is too short: it must be at least 32 bytes in production.",
        ),
    ],
)
def test_production_refuses_a_default_empty_or_short_secret(secret: str, expected: str) -> None:
    assert error_line(environment="production", secret_key=secret) == expected


def test_production_refuses_the_default_secret_when_none_is_set() -> None:
    assert "SECRET_KEY is the development default" in error_line(environment="production")


def test_secret_length_is_counted_in_bytes() -> None:
    # 16 characters, but 32 bytes in UTF-8: long enough.
    secret = "é" * 16

    settings = Settings(environment="production", secret_key=SecretStr(secret))

    assert settings.secret_key.get_secret_value() == secret


@pytest.mark.parametrize("environment", ["development", "test"])
def test_short_secret_is_accepted_outside_production(environment: str) -> None:
    assert Settings.model_validate({"environment": environment, "secret_key": "short"})


def test_each_bad_setting_gets_its_own_line() -> None:
    lines = error_line(log_level="LOUD", redis_url="http://x").splitlines()

    assert [line.split()[1] for line in lines] == ["REDIS_URL", "LOG_LEVEL"]
    # Each line is the same one the setting gets on its own: nothing between them.
    assert lines == [error_line(redis_url="http://x"), error_line(log_level="LOUD")]


def test_an_error_naming_no_setting_still_gets_one_line() -> None:
    # Not a mapping at all: pydantic's error has no setting's name to report.
    line = error_line_for("not a mapping of settings")

    assert line.startswith("Setting ")
    assert line.count("\n") == 0


def test_secret_never_appears_in_repr_str_or_json() -> None:
    settings = Settings(secret_key=SecretStr(PRODUCTION_SECRET))

    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert PRODUCTION_SECRET not in text
        assert "**********" in text


def test_secret_never_appears_in_error_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    short_secret = "too-short-but-still-secret"
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", short_secret)

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert str(caught.value) == (
        "Setting SECRET_KEY is too short: it must be at least 32 bytes in production."
    )
    # Even pydantic's own report hides the values.
    with pytest.raises(ValidationError) as raw:
        Settings()
    assert short_secret not in str(raw.value)


def test_url_passwords_never_appear_in_repr_or_str() -> None:
    settings = Settings(
        database_url="postgresql+asyncpg://app:hunter2-password@db/users",
        redis_url="redis://:hunter3-password@cache:6379/0",
    )

    for text in (repr(settings), str(settings)):
        assert "hunter2-password" not in text
        assert "hunter3-password" not in text


def test_database_password_never_appears_in_error_messages() -> None:
    line = error_line(database_url="postgresql://app:hunter2-password@db/users")

    assert "hunter2-password" not in line


def test_load_settings_hides_the_pydantic_error_it_replaces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOG_FORMAT", "xml")

    with pytest.raises(SettingsError) as caught:
        load_settings()

    # No chained ValidationError: a traceback shows the one line only.
    assert caught.value.__suppress_context__
    assert caught.value.__cause__ is None


def test_settings_cannot_change_once_read() -> None:
    settings = Settings()

    with pytest.raises(ValidationError, match="frozen"):
        settings.log_level = "DEBUG"


def test_get_settings_reads_once_and_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("LOG_LEVEL", "ERROR")

    assert get_settings() is first
    get_settings.cache_clear()
    assert get_settings().log_level == "ERROR"
