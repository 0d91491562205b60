"""Every project is installable: its wheel ships the `app` package, and nothing else."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import PROJECTS


@pytest.mark.parametrize("project", PROJECTS, ids=lambda path: path.name)
def test_the_wheel_holds_the_app_package_and_no_tests(project: Path, tmp_path: Path) -> None:
    # uv is a dependency of this session; `uv build` fetches the build backend itself.
    built = subprocess.run(
        [sys.executable, "-m", "uv", "build", "--wheel", "--out-dir", str(tmp_path), str(project)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    modules = {name for name in names if name.endswith(".py")}
    expected = {path.relative_to(project).as_posix() for path in (project / "app").rglob("*.py")}
    assert modules == expected, sorted(modules ^ expected)
