"""The mutation session's set-up: each of final/'s modules is a run over its own tests."""

from __future__ import annotations

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
