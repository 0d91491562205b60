"""Nox sessions: one per workshop step, plus final/, the repository checks and the tooling.

`nox` alone runs every step, `final`, `resilience`, `repo`, `lint`, `typecheck`, `docs`
and `browser` (which says how to get a Chromium, and steps aside, where none is found);
`nox --list` shows them all. Arguments after `--` go to the tool a session runs
(`nox -s final -- -k login -x` passes `-k login -x` to pytest).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
# The noxfile is loaded as a plain module: make the repository's tools/ importable.
sys.path.insert(0, str(ROOT))

from tools import mermaid, services  # noqa: E402
from tools.chromium import HOW_TO_GET_ONE, find_chromium  # noqa: E402

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = True

STEPS = sorted(path.parent for path in ROOT.glob("steps/*/pyproject.toml"))
FINAL = ROOT / "final"
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")

# Each project gets its own Redis database number so that no two share keys;
# steps use their number, final/ the one after the last step.
FINAL_REDIS_DB = 9
RESILIENCE_REDIS_DB = 10
BROWSER_REDIS_DB = 11
BENCH_REDIS_DB = 12
# CI sets it: there the browser session fails, rather than skips, without a Chromium.
BROWSER_REQUIRED = os.environ.get("WORKSHOP_BROWSER", "").strip().lower() == "required"


def requirements(project: Path, *groups: str) -> list[str]:
    """Return a project's runtime dependencies plus the named dependency groups."""
    pyproject = nox.project.load_toml(project / "pyproject.toml")
    return [
        *pyproject["project"].get("dependencies", []),
        *nox.project.dependency_groups(pyproject, *groups),
    ]


def requirement_names(specifiers: list[str]) -> set[str]:
    """Return the normalised distribution names of requirement specifiers."""
    return {re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0].lower() for spec in specifiers}


def run_project_tests(session: nox.Session, project: Path, *, database: str, redis_db: int) -> None:
    """Install a project with its test group and run its tests against its own servers."""
    deps = requirements(project, "test")
    session.install(*deps)
    names = requirement_names(deps)
    # A project reaches PostgreSQL only once it depends on the driver, and
    # Redis once it depends on the client: earlier steps start no servers.
    with services.provide(postgres="asyncpg" in names, redis="redis" in names) as found:
        env: dict[str, str] = {}
        if found.postgres:
            env["DATABASE_URL"] = found.database_url(database)
        if found.redis:
            env["REDIS_URL"] = found.redis_url(redis_db)
            # For the fault tests that start, stop and break a redis-server of their own.
            env["REDIS_SERVER"] = services.redis_server_binary()
        session.chdir(project)
        session.run("pytest", *session.posargs, env=env)


@nox.session
@nox.parametrize("step", [nox.param(path.name, id=path.name) for path in STEPS])
def step(session: nox.Session, step: str) -> None:
    """Run one step's tests (all steps without an id: `nox -s step`)."""
    number = int(step.split("_", 1)[0])
    run_project_tests(session, ROOT / "steps" / step, database=f"workshop_{step}", redis_db=number)


@nox.session
def final(session: nox.Session) -> None:
    """Run the reference service's tests."""
    run_project_tests(session, FINAL, database="workshop_final_test", redis_db=FINAL_REDIS_DB)


@nox.session
def resilience(session: nox.Session) -> None:
    """Break final/'s servers on purpose and check that it degrades as the contract says."""
    session.install(*requirements(FINAL, "test"), "schemathesis>=4.30")
    with services.provide(postgres=True, redis=True) as found:
        env = {
            "DATABASE_URL": found.database_url("workshop_resilience"),
            "REDIS_URL": found.redis_url(RESILIENCE_REDIS_DB),
        }
        session.run("pytest", "resilience", *session.posargs, env=env)


@nox.session
def repo(session: nox.Session) -> None:
    """Check the repository as a whole: step layout, docs, noxfile, compose file."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "test"))
    session.run("pytest", "tests", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Lint and check formatting of every Python file with ruff."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", *(session.posargs or ["."]))
    session.run("ruff", "format", "--check", *(session.posargs or ["."]))


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check final/app, every step's app, the benchmark and the tooling with mypy --strict."""
    projects = [*STEPS, FINAL]
    deps = {spec for project in projects for spec in requirements(project, "test")}
    # docs: mkdocs, whose types the docs hooks in tools/ use.
    session.install(
        *nox.project.dependency_groups(PYPROJECT, "typecheck", "bench", "docs"), *sorted(deps)
    )
    config = str(ROOT / "pyproject.toml")
    # Every project's package is called `app`, so each is checked from its own
    # directory: one mypy run over all of them would see duplicate modules.
    for project in projects:
        session.chdir(project)
        session.run("mypy", "--config-file", config, "app", *session.posargs)
    session.chdir(ROOT)
    session.run("mypy", "--config-file", config, "tools", "bench", "noxfile.py")


def install_mermaid(session: nox.Session, *, required: bool = False) -> bool:
    """Fetch mermaid.js for the docs site once (with npm); say in one line if it cannot be had."""
    session.run("python", str(ROOT / "tools" / "mermaid.py"), *(["--required"] if required else []))
    return mermaid.INSTALLED.is_file()


@nox.session
def docs(session: nox.Session) -> None:
    """Build the docs site strictly (`nox -s docs -- serve` serves it on 127.0.0.1:8001)."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "docs"))
    install_mermaid(session)
    if session.posargs and session.posargs[0] == "serve":
        # As `serve` does: a closed terminal or a process manager's SIGTERM
        # stops mkdocs too, instead of leaving it holding the port.
        with services.stop_on_termination():
            session.run("mkdocs", "serve", *session.posargs[1:])
    else:
        session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session
def browser(session: nox.Session) -> None:
    """Drive Swagger UI and every docs page in the machine's Chromium, offline."""
    chromium = find_chromium()
    if chromium is None:
        if BROWSER_REQUIRED:
            session.error(HOW_TO_GET_ONE)
        session.skip(HOW_TO_GET_ONE)
    session.install(
        *requirements(FINAL), *nox.project.dependency_groups(PYPROJECT, "browser", "docs")
    )
    if not install_mermaid(session, required=BROWSER_REQUIRED):
        session.skip(mermaid.HOW_TO_GET_IT)
    site = str(Path(session.create_tmp()) / "site")
    session.run("mkdocs", "build", "--strict", "--quiet", "--site-dir", site)
    with services.provide(postgres=True, redis=True) as found:
        env = {
            "DATABASE_URL": found.database_url("workshop_browser"),
            "REDIS_URL": found.redis_url(BROWSER_REDIS_DB),
            "WORKSHOP_CHROMIUM": chromium,
            "WORKSHOP_SITE": site,
            # Playwright's driver must not look for, or fetch, browsers of its own.
            "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1",
        }
        session.run("pytest", "browser", *session.posargs, env=env)


@nox.session(default=False)
def serve(session: nox.Session) -> None:
    """Migrate and run final/ on http://127.0.0.1:8000 (docs at /docs)."""
    session.install(*requirements(FINAL))
    # persistent: the development database outlives the session, so the users
    # a learner created are still there tomorrow.
    with services.provide(postgres=True, redis=True, persistent=True) as found:
        env = {
            "DATABASE_URL": found.database_url("workshop"),
            "REDIS_URL": found.redis_url(0),
        }
        session.chdir(FINAL)
        session.run("python", str(ROOT / "tools" / "create_database.py"), env=env)
        session.run("alembic", "upgrade", "head", env=env)
        session.run(
            "uvicorn",
            "app.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            "8000",
            # The app logs one JSON line per request itself (route, status, request id).
            "--no-access-log",
            *session.posargs,
            env=env,
        )


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmark final/ against bare FastAPI and one Redis GET (`-- --quick`, `-- --help`)."""
    session.install(
        *requirements(FINAL, "test"), *nox.project.dependency_groups(PYPROJECT, "bench")
    )
    with services.provide(postgres=True, redis=True) as found:
        env = {
            "DATABASE_URL": found.database_url("workshop_bench"),
            "REDIS_URL": found.redis_url(BENCH_REDIS_DB),
        }
        session.run("python", str(ROOT / "bench" / "run.py"), *session.posargs, env=env)
