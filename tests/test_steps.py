"""Every step is a complete snapshot: files, numbering, docs page, honest dependencies."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
from helpers import PROJECTS, ROOT, STEPS, load_toml

# Packages a project needs at run time without importing them, and why.
RUNTIME_ONLY = {
    "uvicorn": "the ASGI server that runs app.main:app",
    "asyncpg": "the driver SQLAlchemy loads from the postgresql+asyncpg:// URL",
    "python-multipart": "FastAPI parses the OAuth2 login form with it",
    "email-validator": "pydantic's EmailStr validates with it",
    "hiredis": "redis-py's faster protocol parser, used when present",
}
# Imported through the public API of a declared package (FastAPI is Starlette
# and pydantic; pydantic-settings is pydantic): declaring them again would pin
# versions that the framework already chooses.
FRAMEWORK_MODULES = {"starlette", "pydantic", "pydantic_core", "anyio", "typing_extensions"}
# Distribution names whose import name differs.
IMPORT_NAMES = {
    "pydantic-settings": "pydantic_settings",
    "pyjwt": "jwt",
    "prometheus-client": "prometheus_client",
    "pytest-asyncio": "pytest_asyncio",
}


def requirement_name(spec: str) -> str:
    """Return the normalised distribution name of a requirement specifier."""
    return re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0].lower().replace("_", "-")


def imported_modules(directory: Path) -> set[str]:
    """Return the top-level modules that the Python files under `directory` import."""
    modules: set[str] = set()
    for path in directory.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules


def third_party(modules: set[str]) -> set[str]:
    """Drop the standard library and the project's own package from a set of modules."""
    return {m for m in modules if m not in sys.stdlib_module_names and m not in {"app", "tests"}}


def test_steps_are_numbered_contiguously_from_01() -> None:
    numbers = [int(step.name.split("_", 1)[0]) for step in STEPS]
    assert numbers == list(range(1, len(STEPS) + 1)), [step.name for step in STEPS]
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+", step.name) for step in STEPS)


@pytest.mark.parametrize("step", STEPS, ids=lambda path: path.name)
def test_step_has_the_files_of_a_snapshot(step: Path) -> None:
    missing = [
        name
        for name in ("pyproject.toml", "README.md", "app", "tests")
        if not (step / name).exists()
    ]
    assert not missing, f"{step.name} lacks {missing}"
    assert (step / "app" / "__init__.py").is_file()


@pytest.mark.parametrize("project", PROJECTS, ids=lambda path: path.name)
def test_project_declares_exactly_the_packages_it_imports(project: Path) -> None:
    pyproject = load_toml(project / "pyproject.toml")
    declared = {requirement_name(spec) for spec in pyproject["project"].get("dependencies", [])}
    code = third_party(imported_modules(project / "app"))
    if (project / "migrations").is_dir():
        code |= third_party(imported_modules(project / "migrations"))
    importable = {IMPORT_NAMES.get(name, name.replace("-", "_")) for name in declared}

    undeclared = code - importable - FRAMEWORK_MODULES
    assert not undeclared, f"{project.name}/app imports {undeclared} without declaring them"

    unused = {
        name
        for name in declared
        if IMPORT_NAMES.get(name, name.replace("-", "_")) not in code and name not in RUNTIME_ONLY
    }
    assert not unused, f"{project.name} declares {unused} but never imports them"


@pytest.mark.parametrize("project", PROJECTS, ids=lambda path: path.name)
def test_project_tests_import_only_declared_packages(project: Path) -> None:
    pyproject = load_toml(project / "pyproject.toml")
    specs = [
        *pyproject["project"].get("dependencies", []),
        *(s for s in pyproject.get("dependency-groups", {}).get("test", []) if isinstance(s, str)),
    ]
    importable = {IMPORT_NAMES.get(n, n.replace("-", "_")) for n in map(requirement_name, specs)}
    used = third_party(imported_modules(project / "tests"))
    if (project / "exercises").is_dir():
        used |= third_party(imported_modules(project / "exercises"))
    undeclared = used - importable - FRAMEWORK_MODULES - {"_pytest"}
    assert not undeclared, (
        f"{project.name}/tests or exercises import {undeclared} without declaring them"
    )


def test_step_revisions_are_finals_never_edited() -> None:
    # Migrations are history: a revision a step ships is final/'s, byte for byte,
    # so no later step (nor final/) can have edited it.
    final_versions = ROOT / "final" / "migrations" / "versions"
    for step in STEPS:
        versions = step / "migrations" / "versions"
        if not versions.is_dir():
            continue
        for revision in sorted(versions.glob("*.py")):
            original = final_versions / revision.name
            assert original.is_file(), f"{step.name} ships {revision.name}, which final/ lacks"
            assert revision.read_bytes() == original.read_bytes(), (
                f"{step.name}/migrations/versions/{revision.name} differs from final/'s"
            )
