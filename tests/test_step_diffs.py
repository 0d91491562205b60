"""The docs' "What changed" diffs are generated from the step snapshots."""

from __future__ import annotations

import sys
from pathlib import Path

from helpers import ROOT

sys.path.insert(0, str(ROOT))

from tools.step_diffs import write_step_diffs


def make_step(steps: Path, name: str, files: dict[str, str]) -> None:
    """Write a minimal step snapshot."""
    for relative, text in {"pyproject.toml": "[project]\n", **files}.items():
        path = steps / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_each_step_diff_is_what_it_adds_to_the_previous_one(tmp_path: Path) -> None:
    steps, output = tmp_path / "steps", tmp_path / "out"
    make_step(steps, "01_first", {"app/config.py": "A = 1\n"})
    make_step(steps, "02_second", {"app/config.py": "A = 1\n", "app/main.py": "B = 2\n"})

    first, second = (path.read_text() for path in write_step_diffs(steps, output))

    assert "+++ b/app/config.py" in first
    assert "+A = 1" in first
    assert "+++ b/app/main.py" in second
    assert "+B = 2" in second
    assert "config.py" not in second  # unchanged files are not in the diff


def test_caches_and_local_files_are_left_out(tmp_path: Path) -> None:
    steps, output = tmp_path / "steps", tmp_path / "out"
    make_step(
        steps,
        "01_first",
        {
            "app/x.py": "X = 1\n",
            "app/__pycache__/x.cpython-311.pyc": "junk",
            ".env": "SECRET_KEY=s",
            # What a test run leaves: Hypothesis's folder, coverage's data files.
            ".hypothesis/constants/x": "junk",
            ".coverage": "junk",
            ".coverage.host.123.abc": "junk",
        },
    )

    (diff,) = (path.read_text() for path in write_step_diffs(steps, output))

    assert "__pycache__" not in diff
    assert "SECRET_KEY" not in diff
    assert ".hypothesis" not in diff
    assert ".coverage" not in diff
    assert "+X = 1" in diff


def test_a_step_diff_shows_removed_files(tmp_path: Path) -> None:
    steps, output = tmp_path / "steps", tmp_path / "out"
    make_step(steps, "01_first", {"app/old.py": "OLD = 1\n"})
    make_step(steps, "02_second", {"app/new.py": "NEW = 1\n"})

    second = write_step_diffs(steps, output)[1].read_text()

    assert "--- a/app/old.py\n+++ /dev/null" in second
    assert "-OLD = 1" in second


def test_changed_files_get_a_diff_of_their_own_and_new_ones_a_row(tmp_path: Path) -> None:
    steps, output = tmp_path / "steps", tmp_path / "out"
    make_step(steps, "01_first", {"app/config.py": "A = 1\n", "app/old.py": "OLD = 1\n"})
    make_step(steps, "02_second", {"app/config.py": "A = 2\n", "app/main.py": "B = 2\n"})

    write_step_diffs(steps, output)

    per_file = sorted(
        p.relative_to(output / "02_second").as_posix() for p in (output / "02_second").rglob("*")
    )
    assert per_file == ["app", "app/config.py.diff", "app/old.py.diff"]
    assert "-A = 1\n+A = 2" in (output / "02_second" / "app" / "config.py.diff").read_text()
    table = (output / "02_second.md").read_text()
    assert "| `app/config.py` | changed | +1 -1 |" in table
    assert "| `app/main.py` | new | +1 |" in table
    assert "| `app/old.py` | removed | +0 -1 |" in table


def test_exercises_are_not_part_of_a_steps_layer(tmp_path: Path) -> None:
    steps, output = tmp_path / "steps", tmp_path / "out"
    make_step(steps, "01_first", {"app/x.py": "X = 1\n", "exercises/e/test_e.py": "E = 1\n"})

    (diff,) = (path.read_text() for path in write_step_diffs(steps, output))

    assert "exercises" not in diff
    assert "exercises" not in (output / "01_first.md").read_text()


def test_a_diff_that_no_longer_applies_is_removed(tmp_path: Path) -> None:
    steps, output = tmp_path / "steps", tmp_path / "out"
    make_step(steps, "01_first", {"app/x.py": "X = 1\n"})
    make_step(steps, "02_second", {"app/x.py": "X = 2\n"})
    write_step_diffs(steps, output)

    (steps / "02_second" / "app" / "x.py").write_text("X = 1\n")
    write_step_diffs(steps, output)

    assert not (output / "02_second" / "app" / "x.py.diff").exists()
