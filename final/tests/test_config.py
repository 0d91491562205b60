"""Settings validation: clear one-line errors that never echo values."""

import pytest

from app.config import RateLimit, SettingsError, load_settings

STRONG_SECRET = "s" * 32


def _load(**values: object) -> object:
    return load_settings(_env_file=None, **values)


@pytest.mark.parametrize("secret", [None, "", "too-short-secret"])
def test_production_refuses_default_empty_or_short_secret(secret: str | None) -> None:
    values = {"environment": "production"} | ({} if secret is None else {"secret_key": secret})
    with pytest.raises(SettingsError, match="SECRET_KEY") as caught:
        _load(**values)
    assert "\n" not in str(caught.value)
    if secret:
        assert secret not in str(caught.value)


def test_production_accepts_a_long_secret_and_never_shows_it() -> None:
    settings = load_settings(_env_file=None, environment="production", secret_key=STRONG_SECRET)
    assert STRONG_SECRET not in repr(settings)
    assert STRONG_SECRET not in str(settings)
    assert STRONG_SECRET not in settings.model_dump_json()


@pytest.mark.parametrize(
    ("values", "name"),
    [
        ({"database_url": "postgresql://u:hunter2@db/x"}, "DATABASE_URL"),
        ({"redis_url": "http://u:hunter2@cache"}, "REDIS_URL"),
        ({"rate_limit": "5/fortnight"}, "RATE_LIMIT"),
        ({"login_rate_limit": "0/minute"}, "LOGIN_RATE_LIMIT"),
        ({"log_format": "xml"}, "LOG_FORMAT"),
        ({"trusted_hosts": "[not json"}, "TRUSTED_HOSTS"),
        # No host would make every request a 400, /health/live included.
        ({"trusted_hosts": ""}, "TRUSTED_HOSTS"),
        ({"trusted_hosts": "[]"}, "TRUSTED_HOSTS"),
        # Lifetimes past datetime's range made every login a 500.
        ({"access_token_ttl_seconds": 10**12}, "ACCESS_TOKEN_TTL_SECONDS"),
        ({"refresh_token_ttl_seconds": 10**12}, "REFRESH_TOKEN_TTL_SECONDS"),
        ({"cache_ttl_seconds": 1e12}, "CACHE_TTL_SECONDS"),
        ({"db_pool_size": 0}, "DB_POOL_SIZE"),
    ],
)
def test_bad_value_fails_with_one_line_naming_the_setting(
    values: dict[str, object], name: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        _load(**values)
    message = str(caught.value)
    assert message.startswith(f"Setting {name} is invalid"), message
    assert "\n" not in message
    assert "hunter2" not in message
    assert "fortnight" not in message


def test_settings_read_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("TRUSTED_HOSTS", '["api.example.com", "*.example.org"]')
    monkeypatch.setenv("LOGIN_RATE_LIMIT", "3/second")
    monkeypatch.setenv("log_level", "debug")
    settings = load_settings(_env_file=None)
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.trusted_hosts == ["api.example.com", "*.example.org"]
    assert settings.login_rate_limit == RateLimit(count=3, period_seconds=1)
    assert settings.log_level == "DEBUG"


def test_defaults_match_the_contract() -> None:
    settings = load_settings(_env_file=None)
    assert settings.environment == "development"
    assert settings.access_token_ttl_seconds == 900
    assert settings.refresh_token_ttl_seconds == 1_209_600
    assert settings.login_rate_limit == RateLimit(5, 60)
    assert settings.rate_limit == RateLimit(100, 60)
    assert settings.trusted_hosts == ["localhost", "127.0.0.1", "test"]
    assert settings.max_body_bytes == 1024 * 1024


# --- Redis, cache and rate limits -------------------------------------------------------


def test_redis_and_cache_defaults_are_short_timeouts_and_an_enabled_cache() -> None:
    settings = load_settings(_env_file=None)
    assert settings.redis_socket_timeout_seconds <= 0.5
    assert settings.cache_enabled is True
    assert settings.trusted_proxies == []


def test_cache_can_be_disabled_and_proxies_trusted_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CACHE_ENABLED", "false")
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.1, 192.168.0.0/16, ::1")
    settings = load_settings(_env_file=None)
    assert settings.cache_enabled is False
    assert [str(network) for network in settings.trusted_proxies] == [
        "10.0.0.1/32",
        "192.168.0.0/16",
        "::1/128",
    ]


@pytest.mark.parametrize("value", ["proxy.internal", "10.0.0.1/8", '["10.0.0.1", 7]', "[bad"])
def test_a_bad_trusted_proxy_fails_with_one_line_naming_the_setting(value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        _load(trusted_proxies=value)
    message = str(caught.value)
    assert message.startswith("Setting TRUSTED_PROXIES is invalid"), message
    assert "\n" not in message
