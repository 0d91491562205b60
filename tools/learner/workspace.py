"""The learner's workspace, `work/`: a step's snapshot, backed up before it is replaced."""

from __future__ import annotations

import difflib
import hashlib
import shutil
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path

# A step's snapshot is everything in its directory but these: the tests judge
# the learner's code from outside it, so they are never copied in (but in a
# step where the learner writes the tests: see `with_tests`).
NOT_IN_A_SNAPSHOT = {"tests", "exercises", "README.md", "learn.toml"}
CACHES = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv"}


def is_cache(path: Path) -> bool:
    """Whether a path lies in a cache directory or is compiled bytecode."""
    return any(part in CACHES or part.endswith(".egg-info") for part in path.parts) or (
        path.suffix in {".pyc", ".pyo"}
    )


def snapshot_files(
    step: Path, *, with_tests: bool = False, leave_out: Collection[str] = ()
) -> list[Path]:
    """The files of a step's snapshot, relative to the step (its tests too, if asked).

    with_tests: the step's tests/ belong to the snapshot, but for the files in
    leave_out (the tests that judge a learner's tests).
    """
    left_out = NOT_IN_A_SNAPSHOT - ({"tests"} if with_tests else set())
    return sorted(
        relative
        for relative in (path.relative_to(step) for path in step.rglob("*") if path.is_file())
        if relative.parts[0] not in left_out
        and relative.as_posix() not in leave_out
        and not is_cache(relative)
    )


def workspace_files(work: Path) -> list[Path]:
    """The learner's files (caches aside), relative to the workspace."""
    if not work.is_dir():
        return []
    return sorted(
        path.relative_to(work)
        for path in work.rglob("*")
        if path.is_file() and not is_cache(path.relative_to(work))
    )


def manifest(work: Path) -> dict[str, str]:
    """{relative path: sha256} of the workspace, to tell later whether the learner changed it."""
    return {
        str(path): hashlib.sha256((work / path).read_bytes()).hexdigest()
        for path in workspace_files(work)
    }


def changed_files(work: Path, baseline: dict[str, str] | None) -> list[str]:
    """The files that differ from the baseline (every file when there is none)."""
    current = manifest(work)
    if baseline is None:
        return sorted(current)
    return sorted(
        name for name in current.keys() | baseline.keys() if current.get(name) != baseline.get(name)
    )


def copy_snapshot(
    step: Path | None,
    work: Path,
    *,
    first_pyproject: Path | None = None,
    with_tests: bool = False,
    leave_out: Collection[str] = (),
) -> None:
    """Replace the workspace with a step's snapshot (only a pyproject.toml for step 01)."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    if step is None:
        # The first step starts from nothing but the list of packages it uses.
        if first_pyproject is not None:
            shutil.copy2(first_pyproject, work / "pyproject.toml")
        return
    for relative in snapshot_files(step, with_tests=with_tests, leave_out=leave_out):
        target = work / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(step / relative, target)


def clear(work: Path) -> None:
    """Remove the workspace (once it is backed up)."""
    if work.exists():
        shutil.rmtree(work)


def back_up(work: Path, backups: Path, label: str) -> Path | None:
    """Copy the workspace aside (caches left out); return where, or None if there was none."""
    if not workspace_files(work):
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    target = backups / f"{stamp}-{label}"
    shutil.copytree(work, target, ignore=shutil.ignore_patterns(*CACHES, "*.pyc", "*.egg-info"))
    return target


def solution_diff(
    work: Path, step: Path, *, with_tests: bool = False, leave_out: Collection[str] = ()
) -> str:
    """The unified diff from the learner's files to the step's own (`work/` -> `steps/NN/`)."""
    ours = {str(path) for path in snapshot_files(step, with_tests=with_tests, leave_out=leave_out)}
    # Tests the learner keeps from a step where they wrote them are not this step's business.
    theirs = {str(path) for path in workspace_files(work) if with_tests or path.parts[0] != "tests"}
    chunks: list[str] = []
    for name in sorted(ours | theirs):
        before = _lines(work / name) if name in theirs else []
        after = _lines(step / name) if name in ours else []
        chunks.extend(
            difflib.unified_diff(
                before,
                after,
                fromfile=f"work/{name}" if name in theirs else "/dev/null",
                tofile=f"steps/{step.name}/{name}" if name in ours else "/dev/null",
            )
        )
    return "".join(chunks)


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return ["(a binary file)\n"]
    return (
        text.splitlines(keepends=True)
        if text.endswith("\n") or not text
        else [
            *text.splitlines(keepends=True)[:-1],
            text.splitlines()[-1] + "\n\\ No newline at end of file\n",
        ]
    )
