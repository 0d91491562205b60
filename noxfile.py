"""Nox sessions: one per workshop step, plus final/, the repository checks and the tooling.

`nox` alone runs every step, `final`, `repo`, `lint`, `typecheck` and `docs`;
`nox --list` shows them all. Arguments after `--` go to the tool a session runs
(`nox -s final -- -k login -x` passes `-k login -x` to pytest).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
# The noxfile is loaded as a plain module: make the repository's tools/ importable.
sys.path.insert(0, str(ROOT))

from tools import services  # noqa: E402
from tools.learner import cli as learner_cli  # noqa: E402

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = True

STEPS = sorted(path.parent for path in ROOT.glob("steps/*/pyproject.toml"))
FINAL = ROOT / "final"
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")

# Each project gets its own Redis database number so that no two share keys;
# steps use their number, final/ the one after the last step.
FINAL_REDIS_DB = 9
RESILIENCE_REDIS_DB = 10
BENCH_REDIS_DB = 12
# The learner check and the authors' check of the steps: one learner, one step at a time.
LEARNER_REDIS_DB = 13


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


@contextmanager
def project_environment(
    session: nox.Session, deps: list[str], *, database: str, redis_db: int
) -> Iterator[dict[str, str]]:
    """Install these packages, start the servers they reach, and yield their URLs."""
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
        yield env


def run_project_tests(session: nox.Session, project: Path, *, database: str, redis_db: int) -> None:
    """Install a project with its test group and run its tests against its own servers."""
    deps = requirements(project, "test")
    with project_environment(session, deps, database=database, redis_db=redis_db) as env:
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
    session.install(*nox.project.dependency_groups(PYPROJECT, "typecheck", "bench"), *sorted(deps))
    config = str(ROOT / "pyproject.toml")
    # Every project's package is called `app`, so each is checked from its own
    # directory: one mypy run over all of them would see duplicate modules.
    for project in projects:
        session.chdir(project)
        session.run("mypy", "--config-file", config, "app", *session.posargs)
    session.chdir(ROOT)
    session.run("mypy", "--config-file", config, "tools", "bench", "noxfile.py")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the docs site strictly (`nox -s docs -- serve` serves it with live reload)."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "docs"))
    if session.posargs and session.posargs[0] == "serve":
        session.run("mkdocs", "serve", *session.posargs[1:])
    else:
        session.run("mkdocs", "build", "--strict", *session.posargs)


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


# --- the learner check: write a step yourself, and have its tests judge it ---------


def run_learner(session: nox.Session, command: str) -> None:
    """Run a learner command that needs no environment of its own, in nox's own Python."""
    if learner_cli.main([command, *session.posargs], learner_cli.Workshop(ROOT)) != 0:
        session.error(f"{command} did not go through (see above).")


def judge_in_step_environment(session: nox.Session, command: str, *extra: str) -> None:
    """Install the current step's packages, start its servers, and run check or watch there."""
    try:
        step_dir = learner_cli.step_to_check(ROOT, session.posargs)
    except learner_cli.RefusedError as refusal:
        session.error(str(refusal))
    deps = [*requirements(step_dir, "test"), *extra]
    database = f"workshop_learner_{step_dir.name}"
    with project_environment(session, deps, database=database, redis_db=LEARNER_REDIS_DB) as env:
        session.run("python", "-m", "tools.learner", command, *session.posargs, env=env)


@nox.session(default=False, venv_backend="none")
def start(session: nox.Session) -> None:
    """Start a step in work/ with the step before's code (`-- 03`; `-- 03 --force`)."""
    run_learner(session, "start")


# reuse_venv: a learner checks again and again; installing only tops the environment up.
@nox.session(default=False, reuse_venv=True)
def check(session: nox.Session) -> None:
    """Judge work/ with the current step's tests, task by task (`-- --json results.json`)."""
    judge_in_step_environment(session, "check")


@nox.session(default=False, reuse_venv=True)
def watch(session: nox.Session) -> None:
    """Check work/ again on every change, the last failures first (`-- --poll` to poll)."""
    judge_in_step_environment(session, "watch", "watchfiles>=1.0")


@nox.session(default=False, venv_backend="none")
def hint(session: nox.Session) -> None:
    """Show the next hint for the task that failed last."""
    run_learner(session, "hint")


@nox.session(default=False, venv_backend="none")
def progress(session: nox.Session) -> None:
    """Show which steps and tasks passed, and which were skipped."""
    run_learner(session, "progress")


@nox.session(default=False, venv_backend="none")
def solution(session: nox.Session) -> None:
    """Show the diff from work/ to the step's own code (before a pass, only when asked twice)."""
    run_learner(session, "solution")


@nox.session(default=False, venv_backend="none")
def reset(session: nox.Session) -> None:
    """Back work/ up under .workshop/backups/ and start the current step again."""
    run_learner(session, "reset")


@nox.session(default=False, venv_backend="none")
def skip(session: nox.Session) -> None:
    """Put the current step's own code in work/ and record the step as skipped."""
    run_learner(session, "skip")


@nox.session
@nox.parametrize("step", [nox.param(path.name, id=path.name) for path in STEPS])
def authors(session: nox.Session, step: str) -> None:
    """Check a step's tests judge a learner fairly: each task fails on the step before."""
    index = [path.name for path in STEPS].index(step)
    # The step before's tests run here too (on this step's code): their packages as well.
    deps = [
        *requirements(STEPS[index], "test"),
        *(requirements(STEPS[index - 1], "test") if index else []),
    ]
    database = f"workshop_authors_{step}"
    with project_environment(session, deps, database=database, redis_db=LEARNER_REDIS_DB) as env:
        session.run("python", "-m", "tools.learner.authors", step, env=env)


@nox.session
def learner(session: nox.Session) -> None:
    """Test the learner check and the authors' check themselves, on copies of the steps."""
    deps = sorted({spec for path in STEPS for spec in requirements(path, "test")})
    deps += ["watchfiles>=1.0"]
    with project_environment(
        session, deps, database="workshop_learner_tests", redis_db=LEARNER_REDIS_DB
    ) as env:
        # `python -m`: the tests import the tools from the repository root. The
        # steps' pytest-asyncio is for the steps' suites, which run in subprocesses.
        tests = ["tools/learner/tests", "-p", "no:asyncio"]
        session.run("python", "-m", "pytest", *tests, *session.posargs, env=env)
