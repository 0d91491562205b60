"""Write each step's diff from the previous step's snapshot, for the docs' "What changed".

The diffs are generated, never typed: the docs build runs this as a mkdocs hook
(`on_config`), and each step page includes its file with pymdownx.snippets.
Run it by hand with `python tools/step_diffs.py` to look at the files.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STEPS = ROOT / "steps"
OUTPUT = ROOT / ".generated" / "step-diffs"

# Caches and local environments are not part of a snapshot.
IGNORED_PARTS = {
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".venv",
    ".nox",
}
IGNORED_SUFFIXES = {".pyc", ".pyo", ".egg-info"}
# learn.toml is what the learner check reads about a step, not a part of its layer.
IGNORED_NAMES = {".env", "learn.toml"}


def snapshot(directory: Path | None) -> dict[str, list[str]]:
    """Return a step's text files as {relative path: lines}; no directory is an empty tree."""
    if directory is None:
        return {}
    files: dict[str, list[str]] = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if (
            not path.is_file()
            or IGNORED_PARTS.intersection(relative.parts)
            or path.suffix in IGNORED_SUFFIXES
            or path.name in IGNORED_NAMES
        ):
            continue
        try:
            # Lines without their newline keep the diff's headers on lines of their own.
            files[relative.as_posix()] = [
                line + "\n" for line in path.read_text(encoding="utf-8").splitlines()
            ]
        except UnicodeDecodeError:
            files[relative.as_posix()] = [f"(binary file, {path.stat().st_size} bytes)\n"]
    return files


def diff_trees(old: Path | None, new: Path) -> str:
    """Return the unified diff that turns snapshot `old` into snapshot `new`."""
    before, after = snapshot(old), snapshot(new)
    chunks: list[str] = []
    for name in sorted(before.keys() | after.keys()):
        old_lines, new_lines = before.get(name, []), after.get(name, [])
        if old_lines == new_lines:
            continue
        chunks.extend(
            difflib.unified_diff(
                old_lines,
                new_lines,
                fromfile=f"a/{name}" if name in before else "/dev/null",
                tofile=f"b/{name}" if name in after else "/dev/null",
            )
        )
    return "".join(chunks) or "(no changes)\n"


def write_step_diffs(steps: Path = STEPS, output: Path = OUTPUT) -> list[Path]:
    """Write one `<step>.diff` per step into `output`; step 01's is its whole tree."""
    output.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    previous: Path | None = None
    for step in sorted(path for path in steps.iterdir() if (path / "pyproject.toml").is_file()):
        target = output / f"{step.name}.diff"
        text = diff_trees(previous, step)
        # Rewrite only on change, so that `mkdocs serve` does not rebuild in a loop.
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
        written.append(target)
        previous = step
    return written


def on_config(config: Any) -> Any:
    """Mkdocs hook: generate the diffs before any page includes them."""
    write_step_diffs()
    return config


if __name__ == "__main__":
    for path in write_step_diffs():
        print(path.relative_to(ROOT))
