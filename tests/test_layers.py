"""Every project's `app/` keeps its layers: routes -> policy -> mechanism -> clients, no cycles."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest
from helpers import PROJECTS

# Top to bottom. A module may import from its own layer or from any layer
# below it, never from one above: a Redis mechanism that imported a route
# could not be tested, or reused, without the web layer.
LAYERS: list[tuple[str, set[str]]] = [
    ("entry points", {"app.main", "app.__main__"}),
    # app.openapi reads the routes' dependencies to describe what each can answer.
    ("routes", {"app.routes.*", "app.openapi"}),
    ("HTTP policy", {"app.deps", "app.limit_policy", "app.user_reads", "app.session_markers"}),
    ("HTTP plumbing", {"app.middleware", "app.errors", "app.state"}),
    ("mechanisms", {"app.cache", "app.ratelimit", "app.repository", "app.security"}),
    (
        "clients and foundations",
        {
            "app.config",
            "app.db",
            "app.models",
            "app.redis_client",
            "app.logging",
            "app.metrics",
            "app.schemas",
        },
    ),
]
PACKAGES = {"app", "app.routes"}


def layer_of(module: str) -> int:
    """Return the index of the layer a module belongs to (0 is the top)."""
    for index, (_name, members) in enumerate(LAYERS):
        if module in members or any(
            pattern.endswith(".*") and module.startswith(pattern[:-1]) for pattern in members
        ):
            return index
    raise AssertionError(
        f"{module} is in no layer: add it to LAYERS in tests/test_layers.py, where it belongs."
    )


def module_name(app_dir: Path, path: Path) -> str:
    """Return the dotted name of a module file under app/."""
    parts = path.relative_to(app_dir.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Return the app modules a file imports (`from app import x` counts as app.x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "app":
            if node.module in PACKAGES:
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "app")
    return found - PACKAGES


def import_graph(app_dir: Path) -> dict[str, set[str]]:
    """Return each module of a project's app/ with the app modules it imports."""
    return {
        module_name(app_dir, path): imports_of(path)
        for path in sorted(app_dir.rglob("*.py"))
        if module_name(app_dir, path) not in PACKAGES
    }


@pytest.mark.parametrize("project", PROJECTS, ids=lambda path: path.name)
def test_no_module_imports_from_a_layer_above_it(project: Path) -> None:
    graph = import_graph(project / "app")
    upward = [
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for module, targets in graph.items()
        for target in sorted(targets)
        if layer_of(target) < layer_of(module)
    ]
    assert not upward, "Imports against the layering:\n" + "\n".join(upward)


@pytest.mark.parametrize("project", PROJECTS, ids=lambda path: path.name)
def test_app_modules_import_each_other_without_cycles(project: Path) -> None:
    graph = import_graph(project / "app")
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        pytest.fail(f"Import cycle in {project.name}/app: {' -> '.join(error.args[1])}")


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    (app_dir / "routes").mkdir(parents=True)
    (app_dir / "cache.py").write_text("from app.routes.users import router\n")
    (app_dir / "routes" / "users.py").write_text("from app.cache import UserCache\n")
    graph = import_graph(app_dir)
    assert graph == {"app.cache": {"app.routes.users"}, "app.routes.users": {"app.cache"}}
    assert layer_of("app.routes.users") < layer_of("app.cache")
    with pytest.raises(CycleError):
        tuple(TopologicalSorter(graph).static_order())
