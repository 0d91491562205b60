"""docker-compose.yml: parsed and checked, since no Docker engine runs the tests."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from helpers import ROOT


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """Parse the compose file."""
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Return {dependency: condition} for a service."""
    return {name: spec["condition"] for name, spec in service.get("depends_on", {}).items()}


def test_database_is_postgresql_17_with_a_healthcheck_and_a_named_volume(
    compose: dict[str, Any],
) -> None:
    db = compose["services"]["db"]
    assert db["image"].startswith("postgres:17")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume = db["volumes"][0].split(":")[0]
    assert volume in compose["volumes"], "the data volume must be named, not a bind mount"


def test_redis_is_version_7_with_a_healthcheck_and_a_named_volume(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    assert "ping" in " ".join(redis["healthcheck"]["test"])
    assert redis["volumes"][0].split(":")[0] in compose["volumes"]


def test_migrate_runs_alembic_once_from_the_final_image(compose: dict[str, Any]) -> None:
    migrate = compose["services"]["migrate"]
    assert migrate["build"]["context"] == "./final"
    assert migrate["command"] == ["alembic", "upgrade", "head"]
    assert migrate.get("restart", "no") == "no"
    assert depends_on(migrate) == {"db": "service_healthy"}


def test_api_waits_for_healthy_servers_and_a_finished_migration(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert api["build"]["context"] == "./final"
    assert (ROOT / "final" / api["build"].get("dockerfile", "Dockerfile")).is_file()
    assert depends_on(api) == {
        "db": "service_healthy",
        "redis": "service_healthy",
        "migrate": "service_completed_successfully",
    }


def test_api_is_configured_only_by_environment(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    environment = api["environment"]
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ENVIRONMENT"):
        assert name in environment, f"api lacks {name}"
    # No configuration files are mounted into the service.
    assert "volumes" not in api
    assert "env_file" not in api
    # The secret is never written into the file: it comes from the caller's environment.
    assert str(environment["SECRET_KEY"]).startswith("${")
