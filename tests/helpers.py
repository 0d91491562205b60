"""Paths and readers shared by the repository checks."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
STEPS = sorted(path for path in (ROOT / "steps").iterdir() if path.is_dir())
PROJECTS = [*STEPS, ROOT / "final"]

# `--8<-- "path"` or `--8<-- "path:section"`; a leading `;` escapes an example.
SNIPPET = re.compile(r'^(?P<escape>;?)--8<-- "(?P<target>[^"]+)"\s*$')


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file."""
    with path.open("rb") as file:
        return tomllib.load(file)


def snippet_includes(page: Path) -> list[str]:
    """Return the unescaped snippet targets a docs page includes."""
    targets = []
    for line in page.read_text(encoding="utf-8").splitlines():
        match = SNIPPET.match(line.strip())
        if match and not match["escape"]:
            targets.append(match["target"])
    return targets
