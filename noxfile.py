"""Nox sessions: one per workshop step, plus final/, the repository checks and the tooling.

`nox` alone runs every step, `final`, `resilience`, `repo`, `lint`, `typecheck`, `docs`
and `browser` (which says how to get a Chromium, and steps aside, where none is found);
`nox --list` shows them all. Arguments after `--` go to the tool a session runs
(`nox -s final -- -k login -x` passes `-k login -x` to pytest). Each step also
has `run(NN_name)`, which runs its app, `exercise(NN_name)`, which runs the
test of one of its exercises, and `venv(NN_name)`, which makes its environment
for an editor or a shell; none of them is part of the test run.
"""

from __future__ import annotations

import ast
import itertools
import os
import re
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
# The noxfile is loaded as a plain module: make the repository's tools/ importable.
sys.path.insert(0, str(ROOT))

from tools import mermaid, services, step_runs  # noqa: E402
from tools.chromium import HOW_TO_GET_ONE, find_chromium  # noqa: E402
from tools.learner import cli as learner_cli  # noqa: E402
from tools.learner.lessons import LessonError  # noqa: E402
from tools.mutation import MutationRun, run_in_lanes  # noqa: E402

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = True

STEPS = sorted(path.parent for path in ROOT.glob("steps/*/pyproject.toml"))
STEP_IDS = [nox.param(path.name, id=path.name) for path in STEPS]
FINAL = ROOT / "final"
# The mutation session's work directories (one per step, one per final/ module).
MUTATION_ROOT = ROOT / ".mutation"
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")

# Each project gets its own Redis database number so that no two share keys;
# steps use their number, final/ the one after the last step.
FINAL_REDIS_DB = 9
RESILIENCE_REDIS_DB = 10
BENCH_REDIS_DB = 12
# `run(NN_name)` sessions share one: a learner runs one step's app at a time.
RUN_REDIS_DB = 11
MUTATION_REDIS_DB = 13
BROWSER_REDIS_DB = 14

# What `nox -s mutation` mutates: final/'s security-critical modules, and every
# step's whole app/ (a new step joins by existing). See docs/reference/mutation.md.
# Each of final/'s modules names the test files that judge it: its mutants run
# only those files' tests that reach the mutated function (the whole suite
# reaches the middleware and the token check, ~300 tests a mutant).
MUTATED_FINAL_MODULES: dict[str, tuple[str, ...]] = {
    "app/deps.py": (
        "tests/test_auth_tokens.py",
        "tests/test_auth_fastpath.py",
        "tests/test_auth_sessions.py",
        "tests/test_auth_rbac.py",
        "tests/test_auth_hashing.py",
        "tests/test_database_errors.py",
        "tests/test_openapi.py",
    ),
    "app/security.py": (
        "tests/test_auth_tokens.py",
        "tests/test_auth_login.py",
        "tests/test_auth_sessions.py",
        "tests/test_auth_hashing.py",
        "tests/test_password_races.py",
    ),
    "app/repository.py": (
        "tests/test_repository.py",
        "tests/test_users_api.py",
        "tests/test_auth_sessions.py",
        "tests/test_auth_rbac.py",
        "tests/test_admin_races.py",
        "tests/test_properties.py",
        "tests/test_session_repository.py",
        "tests/test_repository_locks.py",
    ),
    "app/ratelimit.py": (
        "tests/test_ratelimit.py",
        "tests/test_rate_limits_api.py",
        "tests/test_session_markers.py",
        "tests/test_redis_refusals.py",
        "tests/test_properties.py",
    ),
    "app/limit_policy.py": (
        "tests/test_login_limit.py",
        "tests/test_rate_limits_api.py",
        "tests/test_auth_fastpath.py",
    ),
    "app/cache.py": (
        "tests/test_cache.py",
        "tests/test_user_cache_api.py",
        "tests/test_redis_server_faults.py",
        "tests/test_cache_redis_failures.py",
    ),
    "app/user_reads.py": (
        "tests/test_user_cache_api.py",
        "tests/test_cache.py",
        # A cached read keeps the RateLimit headers: checked with the limits.
        "tests/test_rate_limits_api.py",
    ),
    "app/errors.py": (
        "tests/test_middleware_and_errors.py",
        "tests/test_database_errors.py",
        "tests/test_database_connection_cuts.py",
        "tests/test_users_api.py",
        "tests/test_auth_tokens.py",
        "tests/test_auth_hashing.py",
        "tests/test_problem_details.py",
    ),
    "app/middleware.py": (
        "tests/test_middleware_and_errors.py",
        "tests/test_logging.py",
        "tests/test_metrics.py",
        "tests/test_request_guard.py",
        "tests/test_cors.py",
    ),
    "app/session_markers.py": (
        "tests/test_session_markers.py",
        "tests/test_auth_fastpath.py",
        "tests/test_auth_sessions.py",
        "tests/test_admin_races.py",
    ),
}
# CI sets it: there the browser session fails, rather than skips, without a Chromium.
BROWSER_REQUIRED = os.environ.get("WORKSHOP_BROWSER", "").strip().lower() == "required"
# The learner check and the authors' check of the steps: one learner, one step at a time.
LEARNER_REDIS_DB = 15


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


def servers_needed(specifiers: list[str]) -> dict[str, bool]:
    """Say which servers a project reaches, from its dependencies (keywords of `provide`)."""
    names = requirement_names(specifiers)
    # A project reaches PostgreSQL only once it depends on the driver, and
    # Redis once it depends on the client: earlier steps start no servers.
    return {"postgres": "asyncpg" in names, "redis": "redis" in names}


@contextmanager
def project_environment(
    session: nox.Session, deps: list[str], *, database: str, redis_db: int
) -> Iterator[dict[str, str]]:
    """Install these packages, start the servers they reach, and yield their URLs."""
    session.install(*deps)
    with services.provide(**servers_needed(deps)) as found:
        env: dict[str, str] = {}
        if found.postgres:
            env["DATABASE_URL"] = found.database_url(database)
        if found.redis:
            env["REDIS_URL"] = found.redis_url(redis_db)
            # For the fault tests that start, stop and break a redis-server of their own.
            env["REDIS_SERVER"] = services.redis_server_binary()
        yield env


def coverage_args(project: Path) -> list[str]:
    """The pytest arguments that measure coverage, for a project whose pyproject sets a floor."""
    pyproject = nox.project.load_toml(project / "pyproject.toml")
    if "report" not in pyproject.get("tool", {}).get("coverage", {}):
        return []
    # fail_under, show_missing and skip_covered come from the project's own table.
    return ["--cov", "--cov-report=term-missing:skip-covered"]


def run_project_tests(
    session: nox.Session,
    project: Path,
    *,
    database: str,
    redis_db: int,
    pytest_args: list[str] | None = None,
    transcript: Path | None = None,
) -> list[str]:
    """Install a project with its test group and run its tests against its own servers.

    Without arguments after `--`, a project with a coverage floor is measured
    against it; with them, pytest gets those arguments only. With `transcript`,
    what pytest prints is also copied there (tools/pytest_transcript). Return
    the command run.
    """
    deps = requirements(project, "test")
    with project_environment(session, deps, database=database, redis_db=redis_db) as env:
        session.chdir(project)
        if pytest_args is None:
            pytest_args = session.posargs or coverage_args(project)
        if transcript is not None:
            env["PYTEST_PLUGINS"] = "workshop_transcript"
            plugins = [str(ROOT / "tools" / "pytest_transcript"), os.environ.get("PYTHONPATH")]
            env["PYTHONPATH"] = os.pathsep.join(filter(None, plugins))
            env["WORKSHOP_TRANSCRIPT"] = str(transcript)
        session.run("pytest", *pytest_args, env=env)
    return ["pytest", *pytest_args]


@nox.session
@nox.parametrize("step", STEP_IDS)
def step(session: nox.Session, step: str) -> None:
    """Run one step's tests (all steps without an id: `nox -s step`)."""
    number = int(step.split("_", 1)[0])
    # Only a whole run is recorded: the step's page shows this very command, so
    # its check need not run it again, and holds the page's output to the record.
    whole_run = not session.posargs
    transcript = Path(session.create_tmp()).resolve() / "pytest-output.txt" if whole_run else None
    command = run_project_tests(
        session,
        ROOT / "steps" / step,
        database=f"workshop_{step}",
        redis_db=number,
        transcript=transcript,
    )
    if transcript is not None:
        step_runs.record_passed(step, command=command, output=transcript.read_text("utf-8"))


def exercises(project: Path) -> dict[str, str]:
    """Return a project's exercises, {name: the first line of its test's docstring}."""
    found: dict[str, str] = {}
    for test in sorted(project.glob("exercises/*/test_*.py")):
        name = test.parent.name
        if test.name == f"test_{name}.py":
            docstring = ast.get_docstring(ast.parse(test.read_text(encoding="utf-8"))) or ""
            found[name] = docstring.partition("\n")[0]
    return found


@nox.session(default=False)
@nox.parametrize("step", STEP_IDS)
def exercise(session: nox.Session, step: str) -> None:
    """Run an exercise's test on a step (`-- NAME [pytest args]`; without a name, list them)."""
    project = ROOT / "steps" / step
    found = exercises(project)
    names = list(itertools.takewhile(lambda arg: not arg.startswith("-"), session.posargs))
    if not names:
        # The list goes to standard output (nox logs to standard error).
        print("\n".join(f"{name}: {summary}" for name, summary in found.items()), flush=True)
        session.log(f'Run one with ./workshop -s "exercise({step})" -- NAME')
        return
    unknown = [name for name in names if name not in found]
    if unknown:
        session.error(
            f"steps/{step} has no exercise {', '.join(unknown)}; it has {', '.join(found)}."
        )
    # The step's own tests are not collected: only the named exercises' tests run.
    paths = [f"exercises/{name}" for name in names]
    number = int(step.split("_", 1)[0])
    run_project_tests(
        session,
        project,
        database=f"workshop_{step}",
        redis_db=number,
        pytest_args=[*paths, *session.posargs[len(names) :]],
    )


# reuse_venv: a restart should not rebuild the environment from scratch
# (installing still runs, so a new dependency arrives).
@nox.session(default=False, reuse_venv=True)
@nox.parametrize("step", STEP_IDS)
def run(session: nox.Session, step: str) -> None:
    """Run one step's app on http://127.0.0.1:8000 with --reload (`python -m app` if no app)."""
    project = ROOT / "steps" / step
    deps = requirements(project)
    session.install(*deps)
    # WORKSHOP_RUN_SCRATCH=1 (the repo's check of the pages' commands sets it)
    # runs on a database of its own, made anew, so that a check never sees nor
    # touches the users a learner created, and empties the run Redis database,
    # which holds only what is rebuilt on demand (cache entries, rate limits):
    # a limit spent by the previous check must not refuse this one.
    scratch = os.environ.get("WORKSHOP_RUN_SCRATCH") == "1"
    # persistent: what a learner created in a step's app is still there tomorrow.
    with services.provide(**servers_needed(deps), persistent=True) as found:
        env: dict[str, str] = {}
        if found.postgres:
            name = f"workshop_{'scratch' if scratch else 'run'}_{step}"
            env["DATABASE_URL"] = found.database_url(name)
        if found.redis:
            env["REDIS_URL"] = found.redis_url(RUN_REDIS_DB)
        session.chdir(project)
        if found.redis and scratch:
            flush = "import os, redis; redis.Redis.from_url(os.environ['REDIS_URL']).flushdb()"
            session.run("python", "-c", flush, env=env)
        if (project / "alembic.ini").is_file():
            create = [
                str(ROOT / "tools" / "create_database.py"),
                *(["--recreate"] if scratch else []),
            ]
            session.run("python", *create, env=env)
            session.run("alembic", "upgrade", "head", env=env)
        if (project / "app" / "main.py").is_file():
            # uvicorn's own defaults are 127.0.0.1:8000; UVICORN_PORT=8001 (or
            # `-- --port 8001`) picks another port, as uvicorn documents.
            session.run("uvicorn", "app.main:app", "--reload", *session.posargs, env=env)
        else:
            session.run("python", "-m", "app", *session.posargs, env=env)


# reuse_venv: an editor keeps pointing at this environment; rebuilding it
# would pull it from under the editor.
@nox.session(default=False, reuse_venv=True)
@nox.parametrize("step", STEP_IDS)
def venv(session: nox.Session, step: str) -> None:
    """Make one step's environment for an editor and print its Python (`-- shell` opens a shell)."""
    project = ROOT / "steps" / step
    session.install(*requirements(project, "test"))
    # The one line on standard output (nox logs to standard error), for an
    # editor's "select interpreter" or a script.
    print(Path(session.bin) / "python", flush=True)
    if not session.posargs:
        return
    if session.posargs != ["shell"]:
        session.error(f"venv({step}) takes `-- shell` or nothing, not {session.posargs}.")
    session.chdir(project)
    session.log(f"A shell in steps/{step} with its environment first on PATH; `exit` leaves it.")
    session.run(os.environ.get("SHELL", "/bin/sh"), external=True)


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


@nox.session(default=False)
def mutation(session: nox.Session) -> None:
    """Mutation-test final/'s security-critical modules and each step's app/ (`-- PATH`: one)."""
    projects = {FINAL: list(MUTATED_FINAL_MODULES), **{step: ["app/*"] for step in STEPS}}
    deps = {spec for project in projects for spec in requirements(project, "test")}
    session.install(*sorted(deps), *nox.project.dependency_groups(PYPROJECT, "mutation"))
    chosen = mutation_targets(session, projects)
    # Lanes run two modules at once, one a core. Each lane has a Redis server of
    # its own (the first the session's, the others private): a test that pauses
    # Redis pauses every client of the server, not just of its database number.
    lanes = int(os.environ.get("MUTATION_LANES", "2"))
    with services.provide(postgres=True, redis=True) as found, ExitStack() as stack:
        runs: list[tuple[str, MutationRun]] = []
        for project, modules in chosen.items():
            name = project.relative_to(ROOT).as_posix()
            for workdir, mutated, tests, globs in mutation_runs(
                project, projects[project], modules
            ):
                prepare = ["prepare", str(project), str(workdir), *mutated, "--tests", *tests]
                session.run("python", str(ROOT / "tools" / "mutation.py"), *prepare, silent=True)
                database = "workshop_mutation_" + "_".join(workdir.relative_to(MUTATION_ROOT).parts)
                runs.append((name, MutationRun(workdir, globs, found.database_url(database))))
        redis_urls = [found.redis_url(MUTATION_REDIS_DB)]
        for lane in range(1, min(lanes, len(runs))):
            server = stack.enter_context(services.private_redis(MUTATION_ROOT / f"redis-{lane}"))
            redis_urls.append(f"{server}/{MUTATION_REDIS_DB}")
        env = {**os.environ, "PATH": f"{session.bin}{os.pathsep}{os.environ.get('PATH', '')}"}
        mutmut = str(Path(session.bin) / "mutmut")
        codes = run_in_lanes([run for _, run in runs], redis_urls, mutmut, env)
    failed = [run.workdir for _, run in runs if codes[run.workdir] != 0]
    for name, run in runs:
        # mutmut exits 0 with survivors; the report judges them.
        session.chdir(run.workdir)
        session.run("python", str(ROOT / "tools" / "mutation.py"), "report", name, *run.globs)
    session.chdir(ROOT)
    if failed:
        logs = ", ".join(str(workdir / "mutmut.log") for workdir in failed)
        session.error(f"mutmut failed in {len(failed)} work directories: see {logs}")


def mutation_runs(
    project: Path, mutated: list[str], chosen: list[str]
) -> Iterator[tuple[Path, list[str], tuple[str, ...], list[str]]]:
    """Each mutmut run of a project: its work directory, modules, test files and mutant globs.

    A step is one run over its whole app/, with all its tests. Each of final/'s
    modules is a run of its own, in a work directory of its own: mutmut maps
    tests to functions once per work directory, over the test files named for
    the module, and a change of those files would void another module's results.
    """
    workdir = MUTATION_ROOT / project.name
    if project != FINAL:
        yield workdir, mutated, (), [module_glob(module) for module in chosen]
        return
    for module in chosen:
        yield (
            workdir / Path(module).stem,
            [module],
            MUTATED_FINAL_MODULES[module],
            [module_glob(module)],
        )


def mutation_targets(
    session: nox.Session, projects: dict[Path, list[str]]
) -> dict[Path, list[str]]:
    """The projects and modules named after `--` (a project or a module path), or all of them."""
    if not session.posargs:
        return projects
    chosen: dict[Path, list[str]] = {}
    for arg in session.posargs:
        path = (ROOT / arg).resolve()
        project = next((p for p in projects if path == p or p in path.parents), None)
        if project is None:
            session.error(f"{arg} is not in final/ or a step: name a project or a module in one.")
        module = path.relative_to(project).as_posix() if path != project else None
        if project == FINAL and module is not None and module not in MUTATED_FINAL_MODULES:
            session.error(
                f"{arg} is not one of final/'s mutated modules: add it to "
                "MUTATED_FINAL_MODULES in noxfile.py, with the test files that judge it."
            )
        chosen.setdefault(project, [])
        if module is None:
            chosen[project] = projects[project]
        elif chosen[project] is not projects[project]:
            chosen[project].append(module)
    return chosen


def module_glob(module: str) -> str:
    """The mutmut mutant-name pattern of a module path (`app/deps.py` -> `app.deps.*`)."""
    return module.removesuffix(".py").replace("/", ".").removesuffix(".*") + ".*"


# --- the learner check: write a step yourself, and have its tests judge it ---------


def run_learner(session: nox.Session, command: str) -> None:
    """Run a learner command that needs no environment of its own, in nox's own Python."""
    if learner_cli.main([command, *session.posargs], learner_cli.Workshop(ROOT)) != 0:
        session.error(f"{command} did not go through (see above).")


def judge_in_step_environment(session: nox.Session, command: str, *extra: str) -> None:
    """Install the current step's packages, start its servers, and run check or watch there."""
    try:
        step_dir = learner_cli.step_to_check(ROOT, session.posargs)
    except (learner_cli.RefusedError, LessonError) as refusal:
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
@nox.parametrize("step", STEP_IDS)
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
