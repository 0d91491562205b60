"""docs/reference/beyond-step-08.md names every file in which final/ differs from the last step."""

from __future__ import annotations

import re
import sys
from fnmatch import fnmatchcase
from pathlib import Path

from helpers import DOCS, ROOT

sys.path.insert(0, str(ROOT))

from tools.step_diffs import beyond_last_step, without_snippet_markers

PAGE = DOCS / "reference" / "beyond-step-08.md"
SECTION = "## Why each file differs"
# A row of the page's table: its first cell is a path, or a pattern such as tests/test_*.py.
ROW = re.compile(r"^\| `([^`]+)` \|", re.MULTILINE)


def named_on_the_page() -> list[str]:
    """Return the paths and patterns the page's table gives a reason for."""
    text = PAGE.read_text(encoding="utf-8")
    assert SECTION in text, f"{PAGE.relative_to(ROOT)} has no {SECTION!r} section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return ROW.findall(section)


def differing() -> list[str]:
    """Return the files of app/, migrations/ and tests/ that differ from the last step to final/."""
    _, found = beyond_last_step()
    return [change.path for change in found]


def test_every_file_in_which_final_differs_is_named_with_its_reason() -> None:
    named = named_on_the_page()
    unnamed = [path for path in differing() if not any(fnmatchcase(path, n) for n in named)]
    assert not unnamed, (
        f"final/ differs from the last step in {unnamed}: make them equal, or name "
        f"each file with the reason in {PAGE.relative_to(ROOT)}"
    )


def test_the_page_names_only_files_that_still_differ() -> None:
    files = differing()
    stale = [name for name in named_on_the_page() if not any(fnmatchcase(f, name) for f in files)]
    assert not stale, f"{PAGE.relative_to(ROOT)} names {stale}, which no longer differ"


def test_the_migrations_are_final_s_chain_revision_for_revision() -> None:
    assert not [path for path in differing() if path.startswith("migrations/")]


def test_a_line_that_is_only_a_snippet_marker_is_no_difference() -> None:
    step = ["A = 1\n", "\n", "\n", "def f():\n", "    return A\n"]
    final = [
        "A = 1\n",
        "\n",
        "\n",
        "# --8<-- [start:f]\n",
        "def f():\n",
        "    return A\n",
        "\n",
        "\n",
        "# --8<-- [end:f]\n",
    ]
    assert without_snippet_markers(final) == step
    # Anything else on the line is code, and stays.
    assert without_snippet_markers(["x = 1  # --8<-- [start:f]\n"]) == [
        "x = 1  # --8<-- [start:f]\n"
    ]


def test_a_marker_between_two_methods_leaves_one_blank_line() -> None:
    final = [
        "    def a(self): ...\n",
        "\n",
        "    # --8<-- [end:a]\n",
        "\n",
        "    def b(self): ...\n",
    ]
    assert without_snippet_markers(final) == [
        "    def a(self): ...\n",
        "\n",
        "    def b(self): ...\n",
    ]


def test_the_page_is_in_the_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert str(PAGE.relative_to(DOCS)) in nav


def test_the_steps_and_final_are_compared_as_trees(tmp_path: Path) -> None:
    steps, final = tmp_path / "steps", tmp_path / "final"
    for directory, files in {
        steps / "01_only": {"app/a.py": "A = 1\n", "tests/test_a.py": "T = 1\n"},
        final: {"app/a.py": "# --8<-- [start:a]\nA = 1\n# --8<-- [end:a]\n", "app/b.py": "B\n"},
    }.items():
        for relative, text in {"pyproject.toml": "[project]\n", **files}.items():
            (directory / relative).parent.mkdir(parents=True, exist_ok=True)
            (directory / relative).write_text(text, encoding="utf-8")

    last, found = beyond_last_step(steps, final)

    assert last == "01_only"
    assert {(change.path, change.kind) for change in found} == {
        ("app/b.py", "new"),
        ("tests/test_a.py", "removed"),
    }
