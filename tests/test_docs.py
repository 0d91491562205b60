"""The docs site: every include resolves, and mkdocs builds it with --strict."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DOCS, ROOT, STEPS, snippet_includes

sys.path.insert(0, str(ROOT))

from tools.step_diffs import beyond_last_step, beyond_name, changes

PAGES = sorted(DOCS.rglob("*.md"))
GENERATED = ".generated/step-diffs/"


def generated_files() -> set[str]:
    """Return the files the build hook writes, as include targets."""
    names: set[str] = set()
    previous = None
    for step in STEPS:
        names |= {f"{GENERATED}{step.name}.md", f"{GENERATED}{step.name}.diff"}
        names |= {
            f"{GENERATED}{step.name}/{change.path}.diff"
            for change in changes(previous, step)
            if change.kind != "new"
        }
        previous = step
    last, found = beyond_last_step()
    beyond = f".generated/{beyond_name(last)}"
    names |= {f"{beyond}.md", *(f"{beyond}/{change.path}.diff" for change in found)}
    return names


def section_markers(path: Path, section: str) -> tuple[bool, bool]:
    """Return whether a file marks the start and the end of a named snippet section."""
    text = path.read_text(encoding="utf-8")
    start = re.search(rf"--8<-- \[start:{re.escape(section)}\]", text) is not None
    end = re.search(rf"--8<-- \[end:{re.escape(section)}\]", text) is not None
    return start, end


@pytest.mark.parametrize("page", PAGES, ids=lambda path: str(path.relative_to(DOCS)))
def test_every_snippet_include_resolves(page: Path) -> None:
    for target in snippet_includes(page):
        if target.startswith(".generated/"):
            # Written by the build hook: the step it names must exist, and a
            # per-file diff must be of a file that the step changes.
            assert target in generated_files(), f"{page.relative_to(ROOT)}: no such {target}"
            continue
        name, _, section = target.partition(":")
        path = ROOT / name
        assert path.is_file(), f"{page.relative_to(ROOT)} includes missing {name}"
        if section:
            assert section_markers(path, section) == (True, True), (
                f"{page.relative_to(ROOT)} includes section {section!r} that {name} does not mark"
            )


def test_docs_never_paste_long_python_listings() -> None:
    # Code comes from real files; a long pasted listing would drift from them.
    fence = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
    for page in PAGES:
        for body in fence.findall(page.read_text(encoding="utf-8")):
            lines = [line for line in body.splitlines() if line.strip()]
            pasted = [line for line in lines if "--8<--" not in line]
            assert len(pasted) <= 8, (
                f"{page.relative_to(ROOT)} pastes {len(pasted)} lines of Python"
            )


def test_mkdocs_builds_strictly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "index.html").is_file()
