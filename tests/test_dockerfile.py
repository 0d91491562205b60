"""The Dockerfiles of final/ and the last step, read and checked: no Docker engine builds them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import ROOT

FINAL = ROOT / "final"
# Every project that ships an image: final/, and the step that introduces it.
PROJECTS = sorted(
    {path.parent for path in [*ROOT.glob("steps/*/Dockerfile"), FINAL / "Dockerfile"]}
)


@pytest.fixture(scope="module", params=PROJECTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def project(request: pytest.FixtureRequest) -> Path:
    """One project with a Dockerfile."""
    path: Path = request.param
    return path


@pytest.fixture(scope="module")
def instructions(project: Path) -> list[tuple[str, str]]:
    """Return the Dockerfile's (INSTRUCTION, arguments), continuation lines joined."""
    text = (project / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    parsed = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            parsed.append((keyword.upper(), arguments.strip()))
    return parsed


def runtime_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Return the instructions of the last stage, the one that runs."""
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    return instructions[starts[-1] :]


def test_the_image_is_built_in_stages(instructions: list[tuple[str, str]]) -> None:
    stages = [arguments for keyword, arguments in instructions if keyword == "FROM"]
    assert len(stages) >= 2, "the build tools must stay out of the runtime image"
    assert all("slim" in stage for stage in stages)


def test_the_service_runs_as_a_user_that_is_not_root(instructions: list[tuple[str, str]]) -> None:
    users = [arguments for keyword, arguments in runtime_stage(instructions) if keyword == "USER"]
    assert users, "the runtime stage never leaves root"
    assert users[-1] not in {"root", "0"}


def test_the_command_is_exec_form_so_uvicorn_gets_sigterm(
    instructions: list[tuple[str, str]],
) -> None:
    (command,) = [arguments for keyword, arguments in instructions if keyword == "CMD"]
    argv = json.loads(command)
    assert argv[:2] == ["uvicorn", "app.main:app"]


def test_the_command_bounds_the_graceful_shutdown(instructions: list[tuple[str, str]]) -> None:
    (command,) = [arguments for keyword, arguments in instructions if keyword == "CMD"]
    argv = json.loads(command)
    # Below Kubernetes' grace period (final/deploy), so SIGKILL never cuts a finishing request.
    assert "--timeout-graceful-shutdown" in argv, argv


def test_the_health_check_asks_the_liveness_route(instructions: list[tuple[str, str]]) -> None:
    (check,) = [arguments for keyword, arguments in instructions if keyword == "HEALTHCHECK"]
    assert "/health/live" in check


def test_no_secret_is_baked_into_the_image(instructions: list[tuple[str, str]]) -> None:
    for keyword, arguments in instructions:
        if keyword in {"ENV", "ARG"}:
            assert not re.search(r"SECRET|PASSWORD|DATABASE_URL|REDIS_URL", arguments), arguments


def test_the_image_carries_the_migrations_the_compose_file_runs(
    project: Path, instructions: list[tuple[str, str]]
) -> None:
    copied = " ".join(arguments for keyword, arguments in instructions if keyword == "COPY")
    for needed in ("alembic.ini", "migrations", "app"):
        assert needed in copied, f"the image lacks {needed}"
    ignored = (project / ".dockerignore").read_text(encoding="utf-8").split()
    assert ".env" in ignored, "a developer's .env must never reach the build context"


def test_the_image_installs_the_project_as_a_package(
    instructions: list[tuple[str, str]],
) -> None:
    runs = [arguments for keyword, arguments in instructions if keyword == "RUN"]
    # The dependencies first (a cached layer), then the project itself without them.
    assert any("-r pyproject.toml" in run for run in runs), runs
    assert any(run.rstrip().endswith("--no-deps .") for run in runs), runs


def test_the_last_step_ships_final_s_image() -> None:
    steps = sorted(ROOT.glob("steps/*/pyproject.toml"))
    last = steps[-1].parent
    for name in ("Dockerfile", ".dockerignore"):
        assert (last / name).read_text(encoding="utf-8") == (FINAL / name).read_text(
            encoding="utf-8"
        ), f"{last.name}/{name} differs from final/{name}"
