"""Each step page shows every line its step adds, once: new files whole, changed files as a diff.

The pages show code only through snippet includes (test_docs keeps pasted
listings short), so what a built page shows is what its includes cover. Each
include is resolved to the lines of the files it shows: a whole file or a
section, or, for a generated per-file diff, the lines on both sides of it.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import pytest
from helpers import DOCS, ROOT, STEPS, snippet_includes

sys.path.insert(0, str(ROOT))

from tools.step_diffs import Change, changes

GENERATED = ".generated/step-diffs/"
PAGES = sorted(DOCS.rglob("*.md"))
_HUNK = re.compile(r"^@@ -(?P<old>\d+)(?:,\d+)? \+(?P<new>\d+)(?:,\d+)? @@")
_MARKER = re.compile(r"--8<-- \[(?:start|end):[\w-]+\]")

Line = tuple[str, int]  # (file path from the repository root, line number)


def step_changes(step_name: str) -> tuple[Path | None, list[Change]]:
    """Return a step's previous step (None for the first) and what changed since it."""
    names = [step.name for step in STEPS]
    index = names.index(step_name)
    previous = STEPS[index - 1] if index else None
    return previous, changes(previous, STEPS[index])


def diff_lines(change: Change, step: str, previous: Path | None) -> list[Line]:
    """Return the lines a diff shows: new and context lines of the step, removed ones before it."""
    old_file = f"steps/{previous.name}/{change.path}" if previous else ""
    new_file = f"steps/{step}/{change.path}"
    shown: list[Line] = []
    old = new = 0
    for line in change.diff.splitlines()[2:]:
        if hunk := _HUNK.match(line):
            old, new = int(hunk["old"]), int(hunk["new"])
        elif line.startswith("-"):
            shown.append((old_file, old))
            old += 1
        elif line.startswith("+"):
            shown.append((new_file, new))
            new += 1
        else:
            shown.append((new_file, new))
            old, new = old + 1, new + 1
    return shown


def file_lines(target: str) -> list[Line]:
    """Return the lines a whole-file or `path:section` include shows, without section markers."""
    name, _, section = target.partition(":")
    lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
    inside = not section
    shown: list[Line] = []
    for number, line in enumerate(lines, start=1):
        if section and f"[start:{section}]" in line:
            inside = True
        elif section and f"[end:{section}]" in line:
            inside = False
        elif inside and not _MARKER.search(line):
            shown.append((name, number))
    return shown


def included_lines(target: str) -> list[Line]:
    """Return the file lines one include shows."""
    if target.startswith(".generated/beyond-step-"):
        return []  # final/ against the last step: diffs of final/'s files, on a page of its own
    if not target.startswith(GENERATED):
        return file_lines(target)
    rest = target.removeprefix(GENERATED)
    if rest.endswith(".md"):
        return []  # the "What changed" table: file names and counts, no code
    step, _, path = rest.removesuffix(".diff").partition("/")
    previous, found = step_changes(step)
    return [
        line
        for change in found
        if not path or change.path == path
        for line in diff_lines(change, step, previous)
    ]


def test_a_diff_is_resolved_to_the_lines_on_both_sides(tmp_path: Path) -> None:
    change = Change(
        path="a.py",
        kind="changed",
        added=1,
        removed=1,
        diff="--- a/a.py\n+++ b/a.py\n@@ -3,2 +3,2 @@\n keep\n-old\n+new\n",
    )

    lines = diff_lines(change, "02_b", tmp_path / "01_a")

    assert lines == [("steps/02_b/a.py", 3), ("steps/01_a/a.py", 4), ("steps/02_b/a.py", 4)]


@pytest.mark.parametrize("page", PAGES, ids=lambda path: str(path.relative_to(DOCS)))
def test_no_line_of_code_is_shown_twice_on_a_page(page: Path) -> None:
    counts = Counter(line for target in snippet_includes(page) for line in included_lines(target))
    twice = sorted(line for line, count in counts.items() if count > 1)
    assert not twice, f"{page.relative_to(ROOT)} shows these lines more than once: {twice[:10]}"


@pytest.mark.parametrize("step", STEPS, ids=lambda path: path.name)
def test_step_page_shows_new_files_whole_and_changed_files_as_their_diff(step: Path) -> None:
    page = DOCS / "steps" / f"{step.name}.md"
    assert page.is_file(), f"{step.name} has no docs page at {page.relative_to(ROOT)}"
    includes = snippet_includes(page)
    assert f"{GENERATED}{step.name}.md" in includes, f"{page.name} lacks its What changed table"
    shown = {line for target in includes for line in included_lines(target)}
    _previous, found = step_changes(step.name)
    for change in found:
        path = f"steps/{step.name}/{change.path}"
        if change.kind == "new":
            missing = [n for name, n in file_lines(path) if (name, n) not in shown]
            assert not missing, f"{page.name} does not show {path} whole (lines {missing[:5]}…)"
        else:
            diff = f"{GENERATED}{step.name}/{change.path}.diff"
            assert diff in includes, f"{page.name} does not show the diff of {change.path}"
            assert path not in includes, f"{page.name} shows changed {path} whole, not its diff"
