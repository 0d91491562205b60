"""Write each step's changes from the previous step's snapshot, for its docs page.

Generated, never typed: the docs build runs this as a mkdocs hook (`on_config`)
and the step pages include the files with pymdownx.snippets. For a step NN_name:

    NN_name.md                the "What changed" table: each file, new, changed or removed
    NN_name/<path>.diff       one changed or removed file's diff, which the page shows
                              instead of the whole file (new files are included whole)
    NN_name.diff              the whole step's diff, to read on its own

and, beside them, what final/ has beyond the last step (`beyond-step-NN/`: the
same table and per-file diffs, over app/, migrations/ and tests/ only), for the
page "From step 08 to final/".

Run it by hand with `python tools/step_diffs.py` to look at the files.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
STEPS = ROOT / "steps"
OUTPUT = ROOT / ".generated" / "step-diffs"
FINAL = ROOT / "final"
BEYOND_OUTPUT = ROOT / ".generated"
# What the last step and final/ must hold alike, except for the files the page names.
COMPARED_WITH_FINAL = {"app", "migrations", "tests"}
# A line that only marks a named section for pymdownx.snippets: docs outside the
# steps include parts of final/, and a step keeps no marker no page includes.
SNIPPET_MARKER = re.compile(r"^\s*# --8<-- \[(start|end):[^\]]+\]\s*$")

# Caches and local environments are not part of a snapshot.
IGNORED_PARTS = {
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".venv",
    ".nox",
    ".hypothesis",
}
IGNORED_SUFFIXES = {".pyc", ".pyo", ".egg-info"}
# learn.toml is what the learner check reads about a step, not a part of its layer.
IGNORED_NAMES = {".env", "learn.toml", ".coverage"}
# Coverage data of a parallel or subprocess run (`.coverage.<host>.<pid>.<random>`).
IGNORED_PREFIXES = (".coverage.",)
# A step's exercises and their answers are its own, not part of the layer it adds.
IGNORED_TOP_LEVEL = {"exercises"}


@dataclass(frozen=True)
class Change:
    """One file that differs between two snapshots, with its unified diff."""

    path: str
    kind: Literal["new", "changed", "removed"]
    added: int
    removed: int
    diff: str


def snapshot(directory: Path | None) -> dict[str, list[str]]:
    """Return a step's text files as {relative path: lines}; no directory is an empty tree."""
    if directory is None:
        return {}
    files: dict[str, list[str]] = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if (
            not path.is_file()
            or relative.parts[0] in IGNORED_TOP_LEVEL
            or IGNORED_PARTS.intersection(relative.parts)
            or path.suffix in IGNORED_SUFFIXES
            or path.name in IGNORED_NAMES
            or path.name.startswith(IGNORED_PREFIXES)
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


def without_snippet_markers(lines: list[str]) -> list[str]:
    """Return the lines without snippet markers, nor the blank lines only a marker separated."""
    kept: list[str] = []
    after_marker_and_blank = False
    for line in lines:
        if SNIPPET_MARKER.match(line):
            # "code, blank, marker, blank, code" is "code, blank, code" without it.
            after_marker_and_blank = bool(kept) and not kept[-1].strip()
            continue
        if after_marker_and_blank and not line.strip():
            continue
        after_marker_and_blank = False
        kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return kept


def changes(
    old: Path | None,
    new: Path,
    *,
    within: set[str] | None = None,
    normalise: Callable[[list[str]], list[str]] = list,
) -> list[Change]:
    """Return the files that differ from snapshot `old` to snapshot `new`, by path.

    `within` keeps only the files under those top-level folders; `normalise`
    rewrites each file's lines before they are compared and diffed.
    """
    before, after = snapshot(old), snapshot(new)
    found: list[Change] = []
    for name in sorted(before.keys() | after.keys()):
        if within is not None and name.split("/", 1)[0] not in within:
            continue
        old_lines = normalise(before[name]) if name in before else []
        new_lines = normalise(after[name]) if name in after else []
        if old_lines == new_lines:
            continue
        lines = list(
            difflib.unified_diff(
                old_lines,
                new_lines,
                fromfile=f"a/{name}" if name in before else "/dev/null",
                tofile=f"b/{name}" if name in after else "/dev/null",
            )
        )
        # Past the two file headers, "+" and "-" start added and removed lines.
        body = lines[2:]
        found.append(
            Change(
                path=name,
                kind="new" if name not in before else "removed" if name not in after else "changed",
                added=sum(line.startswith("+") for line in body),
                removed=sum(line.startswith("-") for line in body),
                diff="".join(lines),
            )
        )
    return found


def diff_trees(old: Path | None, new: Path) -> str:
    """Return the unified diff that turns snapshot `old` into snapshot `new`."""
    return "".join(change.diff for change in changes(old, new)) or "(no changes)\n"


def summary_table(found: list[Change]) -> str:
    """Return the "What changed" table: one row per file, with its lines added and removed."""
    if not found:
        return "Nothing changed.\n"
    rows = ["| file | | lines |", "|---|---|---|"]
    for change in found:
        counts = f"+{change.added}" + (f" -{change.removed}" if change.removed else "")
        rows.append(f"| `{change.path}` | {change.kind} | {counts} |")
    return "\n".join(rows) + "\n"


def _write_if_changed(target: Path, text: str) -> None:
    """Write a file only if its text differs, so that `mkdocs serve` does not rebuild in a loop."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.is_file() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")


def write_step_diffs(steps: Path = STEPS, output: Path = OUTPUT) -> list[Path]:
    """Write every step's table, per-file diffs and whole diff; return the whole diffs."""
    output.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    previous: Path | None = None
    for step in sorted(path for path in steps.iterdir() if (path / "pyproject.toml").is_file()):
        found = changes(previous, step)
        per_file = output / step.name
        wanted = {
            per_file / f"{change.path}.diff": change.diff
            for change in found
            if change.kind != "new"
        }
        for stale in per_file.rglob("*.diff") if per_file.is_dir() else []:
            if stale not in wanted:
                stale.unlink()
        for target, text in wanted.items():
            _write_if_changed(target, text)
        _write_if_changed(output / f"{step.name}.md", summary_table(found))
        whole = output / f"{step.name}.diff"
        _write_if_changed(whole, "".join(change.diff for change in found) or "(no changes)\n")
        written.append(whole)
        previous = step
    return written


def beyond_last_step(steps: Path = STEPS, final: Path = FINAL) -> tuple[str, list[Change]]:
    """Return the last step's name and the files in which final/ differs from it, markers aside."""
    last = max(path for path in steps.iterdir() if (path / "pyproject.toml").is_file())
    return last.name, changes(
        last, final, within=COMPARED_WITH_FINAL, normalise=without_snippet_markers
    )


def beyond_name(last_step: str) -> str:
    """The name of the generated table and folder for what final/ adds beyond a step."""
    return f"beyond-step-{last_step.split('_', 1)[0]}"


def write_beyond_last_step(
    steps: Path = STEPS, final: Path = FINAL, output: Path = BEYOND_OUTPUT
) -> Path:
    """Write the table and per-file diffs from the last step to final/; return the table."""
    last, found = beyond_last_step(steps, final)
    name = beyond_name(last)
    per_file = output / name
    # Every kind gets its diff here: a file only final/ has is shown as one too.
    wanted = {per_file / f"{change.path}.diff": change.diff for change in found}
    for stale in per_file.rglob("*.diff") if per_file.is_dir() else []:
        if stale not in wanted:
            stale.unlink()
    for target, text in wanted.items():
        _write_if_changed(target, text)
    table = output / f"{name}.md"
    _write_if_changed(table, summary_table(found))
    return table


def on_config(config: Any) -> Any:
    """Mkdocs hook: generate the diffs before any page includes them."""
    write_step_diffs()
    write_beyond_last_step()
    return config


if __name__ == "__main__":
    for path in [*write_step_diffs(), write_beyond_last_step()]:
        print(path.relative_to(ROOT))
