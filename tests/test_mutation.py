"""The mutation session's set-up: each of final/'s modules is a run over its own tests."""

from __future__ import annotations

import json
import os
import sys
import tomllib
from pathlib import Path

from helpers import ROOT

import noxfile
from tools import mutation

FINAL = ROOT / "final"


def test_every_mutated_final_module_exists_and_names_test_files_that_exist() -> None:
    for module, tests in noxfile.MUTATED_FINAL_MODULES.items():
        assert (FINAL / module).is_file(), f"{module} is not in final/"
        assert tests, f"{module} names no test files: its mutants would run none"
        missing = [test for test in tests if not (FINAL / test).is_file()]
        assert not missing, f"{module} names test files final/ does not have: {missing}"
        assert len(set(tests)) == len(tests), f"{module} names a test file twice: {tests}"


def test_each_final_module_is_a_run_of_its_own_over_its_tests() -> None:
    modules = ["app/deps.py", "app/cache.py"]
    runs = list(noxfile.mutation_runs(FINAL, list(noxfile.MUTATED_FINAL_MODULES), modules))
    assert [(workdir.name, mutated, globs) for workdir, mutated, _, globs in runs] == [
        ("deps", ["app/deps.py"], ["app.deps.*"]),
        ("cache", ["app/cache.py"], ["app.cache.*"]),
    ]
    assert runs[1][2] == noxfile.MUTATED_FINAL_MODULES["app/cache.py"]
    assert len({workdir for workdir, *_ in runs}) == len(runs), "two runs share a work directory"


def test_a_step_is_one_run_over_its_whole_app_with_all_its_tests() -> None:
    step = ROOT / "steps" / "02_app"
    runs = list(noxfile.mutation_runs(step, ["app/*"], ["app/middleware.py"]))
    assert runs == [(ROOT / ".mutation" / "02_app", ["app/*"], (), ["app.middleware.*"])]


def make_project(folder: Path) -> Path:
    """A project as small as prepare accepts: app/, tests/ and a pyproject.toml."""
    (folder / "app").mkdir(parents=True)
    (folder / "app" / "limits.py").write_text("LIMIT = 1\n")
    (folder / "tests").mkdir()
    (folder / "tests" / "test_limits.py").write_text("def test_limit() -> None: ...\n")
    (folder / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "0"\n\n'
        '[dependency-groups]\ntest = ["pytest>=8.4", "pytest-asyncio>=1.0"]\n'
    )
    return folder


def mutmut_settings(workdir: Path) -> dict[str, object]:
    """The [tool.mutmut] table prepare wrote into the work directory."""
    settings: dict[str, object] = tomllib.loads((workdir / "pyproject.toml").read_text())["tool"][
        "mutmut"
    ]
    return settings


def test_prepare_selects_the_named_tests_and_forks_mutants_from_a_fork_server(
    tmp_path: Path,
) -> None:
    project, workdir = make_project(tmp_path / "project"), tmp_path / "work"
    mutation.prepare(project, workdir, ["app/limits.py"], ["tests/test_limits.py"])
    settings = mutmut_settings(workdir)
    assert settings["only_mutate"] == ["app/limits.py"]
    assert settings["pytest_add_cli_args_test_selection"] == ["tests/test_limits.py"]
    assert settings["process_isolation"] == "forkserver"
    assert (workdir / "tests" / "test_limits.py").is_file()


def test_prepare_without_tests_selects_the_whole_suite(tmp_path: Path) -> None:
    project, workdir = make_project(tmp_path / "project"), tmp_path / "work"
    mutation.main(["prepare", str(project), str(workdir), "app/*"])
    assert mutmut_settings(workdir)["pytest_add_cli_args_test_selection"] == []


def test_prepare_reads_the_test_files_after_tests(tmp_path: Path) -> None:
    project, workdir = make_project(tmp_path / "project"), tmp_path / "work"
    arguments = ["prepare", str(project), str(workdir), "app/limits.py", "--tests", "tests/a.py"]
    mutation.main(arguments)
    settings = mutmut_settings(workdir)
    assert settings["only_mutate"] == ["app/limits.py"]
    assert settings["pytest_add_cli_args_test_selection"] == ["tests/a.py"]


def test_prepare_starts_afresh_when_the_test_selection_changes(tmp_path: Path) -> None:
    project, workdir = make_project(tmp_path / "project"), tmp_path / "work"
    mutation.prepare(project, workdir, ["app/limits.py"], ["tests/test_limits.py"])
    (workdir / "mutants").mkdir()
    mutation.prepare(project, workdir, ["app/limits.py"], ["tests/test_limits.py"])
    assert (workdir / "mutants").is_dir(), "the same settings must keep earlier results"
    mutation.prepare(project, workdir, ["app/limits.py"], ["tests/test_other.py"])
    assert not (workdir / "mutants").exists(), "results mapped over other tests were kept"


# A stand-in for mutmut: it records what it was given, then waits (10 s at most)
# until as many runs have started as there are lanes, so that lanes which do not
# run at the same time fail it; the run named "last" exits 7.
FAKE_MUTMUT = """\
import json, os, sys, time
from pathlib import Path
started = Path(os.environ["STARTED"])
(started / Path.cwd().name).touch()
record = {"args": sys.argv[1:], "db": os.environ["DATABASE_URL"], "redis": os.environ["REDIS_URL"]}
Path("record.json").write_text(json.dumps(record))
deadline = time.monotonic() + 10
while len(list(started.iterdir())) < int(os.environ["LANES"]):
    if time.monotonic() > deadline:
        sys.exit(3)
    time.sleep(0.01)
print("done")
sys.exit(7 if Path.cwd().name == "last" else 0)
"""


def test_lanes_run_at_once_each_run_on_its_own_database_and_each_lane_on_its_own_redis(
    tmp_path: Path,
) -> None:
    fake = tmp_path / "mutmut"
    fake.write_text(f"#!{sys.executable}\n{FAKE_MUTMUT}")
    fake.chmod(0o755)
    (tmp_path / "started").mkdir()
    runs = []
    for name in ("first", "second", "last"):
        (tmp_path / name).mkdir()
        runs.append(
            mutation.MutationRun(tmp_path / name, [f"app.{name}.*"], f"postgresql:///{name}")
        )
    env = {**os.environ, "STARTED": str(tmp_path / "started"), "LANES": "2"}
    codes = mutation.run_in_lanes(runs, ["redis:///13", "redis:///1"], str(fake), env)
    assert codes == {tmp_path / "first": 0, tmp_path / "second": 0, tmp_path / "last": 7}, (
        "a run's exit code is lost, or the first two runs did not run at once (exit 3)"
    )
    records = {
        name: json.loads((tmp_path / name / "record.json").read_text())
        for name in ("first", "second", "last")
    }
    assert records["first"]["args"] == ["run", "--max-children", "1", "app.first.*"]
    assert {name: record["db"] for name, record in records.items()} == {
        "first": "postgresql:///first",
        "second": "postgresql:///second",
        "last": "postgresql:///last",
    }
    assert {records["first"]["redis"], records["second"]["redis"]} == {
        "redis:///13",
        "redis:///1",
    }, "two runs at once shared a Redis database"
    assert (tmp_path / "last" / "mutmut.log").read_text() == "done\n"
