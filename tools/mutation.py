"""Prepare a project for mutmut, and report its score per module (run by `nox -s mutation`).

    python tools/mutation.py prepare PROJECT WORKDIR MODULE... [--tests TEST_FILE...]
    python tools/mutation.py report NAME PATTERN...      (from WORKDIR, after `mutmut run`)

mutmut mutates a copy of the code under `mutants/` and reads its settings from
the project's pyproject.toml: `prepare` copies the project into a work
directory of its own (the tree itself is never touched and needs no mutmut
section) and adds the settings there; `--tests` names the test files that
judge the modules (without it, the whole suite). `report` prints the killed share of each
module and every surviving mutant as a diff, and marks the survivors that
tools/mutation_equivalents.toml lists as equivalent (same behaviour as the
code, so no test can kill them), with the reason given there. `run_in_lanes`
(called by the session) runs mutmut in several work directories at once.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENTS = ROOT / "tools" / "mutation_equivalents.toml"
# What the tests need beside app/ and tests/ (migrations from step 03 on).
COPIED = ("app", "tests", "migrations", "alembic.ini", "pyproject.toml")
# mutmut's exit codes for a mutant (mutmut/stats.py); anything else is "suspicious".
KILLED = {1, 3, 37}
SURVIVED = {0}
TIMEOUT = {24, -24, 36, 152, 255}
NO_TESTS = {5, 33}


def prepare(project: Path, workdir: Path, modules: list[str], tests: list[str]) -> None:
    """Copy the project into workdir and add mutmut's settings; keep earlier results."""
    workdir.mkdir(parents=True, exist_ok=True)
    copied_pyproject = workdir / "pyproject.toml"
    previous = copied_pyproject.read_text() if copied_pyproject.exists() else None
    for name in COPIED:
        source, target = project / name, workdir / name
        if source.is_dir():
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_file():
            shutil.copy2(source, target)
    also_copy = [name for name in ("migrations", "alembic.ini") if (project / name).exists()]
    settings: dict[str, object] = {
        "source_paths": ["app"],
        "only_mutate": modules,
        # The CLI's tests run `python -m app` in a fresh process from an empty
        # directory, where mutmut's mutated code cannot find its settings: they
        # cannot judge a mutant, so the CLI is not mutated (docs/reference/mutation.md).
        "do_not_mutate": ["app/__main__.py"],
        "also_copy": also_copy,
        "pytest_add_cli_args": ["--ignore=tests/test_cli.py", *unused_plugins(project)],
        # The tests mutmut maps to functions, and so the only ones a mutant can run.
        "pytest_add_cli_args_test_selection": tests,
        # Fork each mutant's run from a process that has collected the tests but
        # run none: a process that has run them holds thread pools whose threads
        # a fork does not copy (final/'s password hashing), and every mutant
        # whose tests hash a password would wait on them until its timeout.
        "process_isolation": "forkserver",
        # A mutant that makes a test hang (a lock never released, a loop that
        # never ends) counts as caught once its tests take much longer than they
        # did unmutated. mutmut's wall-clock limit is half of this CPU limit, and
        # a busy machine is slow: generous, so that a slow survivor is not
        # mistaken for a hang.
        "timeout_multiplier": 15.0,
        "timeout_constant": 30.0,
    }
    # JSON's strings, lists and numbers are TOML's too.
    lines = ["", "[tool.mutmut]", *(f"{key} = {json.dumps(val)}" for key, val in settings.items())]
    pyproject = workdir / "pyproject.toml"
    written = pyproject.read_text() + "\n".join(lines) + "\n"
    if previous is not None and previous != written:
        # Other settings or another pyproject: earlier results may not hold, start afresh.
        shutil.rmtree(workdir / "mutants", ignore_errors=True)
    pyproject.write_text(written)


def unused_plugins(project: Path) -> list[str]:
    """pytest options that switch off plugins installed for other projects only.

    One environment serves every project; step 01's tests do not use
    pytest-asyncio, whose warning about its unset options would be an error there.
    """
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    tests = " ".join(pyproject.get("dependency-groups", {}).get("test", []))
    return [] if "pytest-asyncio" in tests else ["-p", "no:asyncio"]


def load_results() -> dict[str, int | None]:
    """Every mutant mutmut knows in this work directory, with its exit code."""
    results: dict[str, int | None] = {}
    for meta in Path("mutants").rglob("*.py.meta"):
        results.update(json.loads(meta.read_text())["exit_code_by_key"])
    return results


def module_of(mutant: str) -> str:
    """`app.deps.x_get_authenticated__mutmut_3` -> `app.deps`."""
    return mutant.rsplit(".", 1)[0]


def outcome(code: int | None) -> str:
    """What an exit code says about a mutant."""
    if code in KILLED:
        return "killed"
    if code in TIMEOUT:
        return "timeout"
    if code in SURVIVED:
        return "survived"
    if code in NO_TESTS:
        return "no tests"
    return "not checked" if code is None else "suspicious"


def diff_of(mutant: str) -> str:
    """The mutant as a diff against the code (what `mutmut show NAME` prints)."""
    # Imported here: only the mutation session's environment has mutmut.
    diff_apply = importlib.import_module("mutmut.mutation.diff_apply")
    path = module_of(mutant).replace(".", "/") + ".py"
    try:
        return str(diff_apply.get_diff_for_mutant(mutant, path=path)).strip()
    except (OSError, ValueError) as error:
        return f"(no diff: {error})"


def equivalents(name: str) -> dict[str, str]:
    """The mutants of this project listed as equivalent, with their reasons."""
    listed = tomllib.loads(EQUIVALENTS.read_text()).get(name, {})
    return {mutant: str(reason) for mutant, reason in listed.items()}


def report(name: str, patterns: list[str]) -> int:
    """Print the score per module and the survivors; 0 when every survivor is explained."""
    results = {
        mutant: code
        for mutant, code in load_results().items()
        if any(fnmatch.fnmatch(mutant, pattern) for pattern in patterns)
    }
    explained = equivalents(name)
    by_module: dict[str, Counter[str]] = {}
    survivors: list[str] = []
    for mutant, code in sorted(results.items()):
        state = outcome(code)
        if state == "survived" and mutant in explained:
            state = "equivalent"
        by_module.setdefault(module_of(mutant), Counter())[state] += 1
        if state in ("survived", "no tests", "suspicious", "not checked"):
            survivors.append(mutant)
    print(f"\nMutation score of {name} (killed, timeouts included, of the mutants not equivalent):")
    total_killed = total_counted = 0
    for module, counts in sorted(by_module.items()):
        killed = counts["killed"] + counts["timeout"]
        counted = sum(counts.values()) - counts["equivalent"]
        total_killed, total_counted = total_killed + killed, total_counted + counted
        share = f"{100 * killed / counted:5.1f}%" if counted else "   - "
        rest = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()) if state != "killed")
        print(f"  {module:<28} {share}  {killed}/{counted}  {rest}")
    if total_counted:
        overall = 100 * total_killed / total_counted
        print(f"  {'all':<28} {overall:5.1f}%  {total_killed}/{total_counted}")
    for mutant in survivors:
        print(f"\n--- {outcome(results[mutant])}: {mutant}")
        if outcome(results[mutant]) != "not checked":
            print(diff_of(mutant))
    for mutant, reason in sorted(explained.items()):
        if mutant not in results:
            continue
        state = outcome(results[mutant])
        if state == "survived":
            print(f"\n--- equivalent: {mutant}: {reason}")
        else:
            print(f"\n--- {mutant} is listed as equivalent but was {state}: unlist it.")
    return 0


@dataclass(frozen=True)
class MutationRun:
    """One `mutmut run` in a prepared work directory, over its own database."""

    workdir: Path
    globs: Sequence[str]
    database_url: str


def run_in_lanes(
    runs: Sequence[MutationRun], redis_urls: Sequence[str], mutmut: str, env: Mapping[str, str]
) -> dict[Path, int]:
    """Run mutmut in each run's work directory, one run per lane at a time.

    Each lane has a Redis server of its own (one URL each), and each run a
    PostgreSQL database of its own: a run recreates its database and its tests
    flush and pause Redis, so two runs at once must share neither. A run writes
    mutmut's output to mutmut.log in its work directory. Returns each work
    directory's exit code once every run has ended; on Ctrl-C (or SIGTERM made
    KeyboardInterrupt), stops the runs under way and starts no other.
    """
    pending = list(runs)
    lock = threading.Lock()
    stopping = threading.Event()
    running: set[subprocess.Popen[bytes]] = set()
    codes: dict[Path, int] = {}

    def lane(redis_url: str) -> None:
        while True:
            with lock:
                if stopping.is_set() or not pending:
                    return
                run = pending.pop(0)
                log = run.workdir / "mutmut.log"
                print(f"mutation: {run.workdir.name}: mutmut run > {log}", flush=True)
                with log.open("wb") as output:
                    process = subprocess.Popen(
                        [mutmut, "run", "--max-children", "1", *run.globs],
                        cwd=run.workdir,
                        env={**env, "DATABASE_URL": run.database_url, "REDIS_URL": redis_url},
                        stdout=output,
                        stderr=subprocess.STDOUT,
                    )
                running.add(process)
            started = time.monotonic()
            code = process.wait()
            with lock:
                running.discard(process)
                codes[run.workdir] = code
            minutes = (time.monotonic() - started) / 60
            print(
                f"mutation: {run.workdir.name}: done in {minutes:.1f} min (exit {code})", flush=True
            )

    threads = [threading.Thread(target=lane, args=(url,)) for url in redis_urls[: len(runs)]]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:
        with lock:
            stopping.set()
            for process in running:
                process.terminate()
        for thread in threads:
            thread.join()
        raise
    return codes


def main(argv: list[str]) -> int:
    """Dispatch `prepare` and `report`."""
    command, *args = argv
    if command == "prepare":
        project, workdir, *rest = args
        at = rest.index("--tests") if "--tests" in rest else len(rest)
        modules, tests = rest[:at], rest[at + 1 :]
        prepare(Path(project), Path(workdir), modules, tests)
        return 0
    if command == "report":
        name, *patterns = args
        return report(name, patterns)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
