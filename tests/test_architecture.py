"""The shape of the house, checked on the import graph of every package in the workspace.

- no import circle between modules;
- within a service the layers point inwards: ``domain`` imports none of ``service_layer``, ``adapters``,
  ``entrypoints`` or ``bootstrap``; ``service_layer`` none of ``adapters``, ``entrypoints``,
  ``bootstrap``; ``adapters`` none of ``entrypoints``, ``bootstrap``; ``entrypoints`` not ``bootstrap``;
- a domain does no I/O: it imports no database, broker or web library;
- ``shared`` imports no service and no tool, and its roles point inwards too: ``contracts`` <-
  ``runtime`` <- ``persistence`` <- ``messaging`` <- ``service``;
- no service imports another;
- the list of services is written once, in ``kariz_shared.system``.

Imports are read with ``ast`` from the source, including those under ``TYPE_CHECKING`` and inside
functions: a circle that only type checking sees is still a circle for a reader.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from kariz_shared.system import SERVICE_NAMES

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [
    ROOT / "shared" / "src",
    *sorted((ROOT / "services").glob("*/src")),
    *sorted((ROOT / "tools").glob("*/src")),
]
SERVICE_PACKAGES = {f"kariz_{name}" for name in SERVICE_NAMES}
TOOL_PACKAGES = {p.name for src in (ROOT / "tools").glob("*/src") for p in src.iterdir() if p.is_dir()}
LAYERS = ("domain", "service_layer", "adapters", "entrypoints", "bootstrap")
SHARED_ROLES = ("contracts", "runtime", "persistence", "messaging", "service")
IO_LIBRARIES = (
    "pymongo",
    "motor",
    "bson",
    "aiokafka",
    "faststream",
    "fastapi",
    "starlette",
    "httpx",
    "aiosmtpd",
)


def module_name(src: Path, file: Path) -> str:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for src in SOURCES:
        for file in src.rglob("*.py"):
            found[module_name(src, file)] = file
    return found


def imports_of(name: str, file: Path, known: set[str]) -> Iterator[str]:
    """Every module ``name`` imports (absolute names; ``from pkg import mod`` counts as ``pkg.mod``)."""
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    yield f"{target}.{alias.name}"


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: set(imports_of(name, file, known)) for name, file in found.items()}


GRAPH = graph()


def internal(target: str) -> str | None:
    """The module of ours that an import names (the longest known prefix), if any."""
    parts = target.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in GRAPH:
            return candidate
    return None


def test_the_graph_covers_every_service_and_shared() -> None:
    assert {"kariz_shared.system", "kariz_shared.service"} <= set(GRAPH)
    for package in SERVICE_PACKAGES:
        assert f"{package}.bootstrap" in GRAPH, f"{package} has no bootstrap module"


def test_no_import_circle() -> None:
    edges = {m: {t for i in targets if (t := internal(i)) and t != m} for m, targets in GRAPH.items()}
    # A module imports its package's __init__ when it imports a sibling: not a circle of code.
    for module, targets in edges.items():
        targets.difference_update({p for p in targets if module.startswith(p + ".")})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    assert not circles, f"import circles: {circles}"


def layer_of(module: str) -> tuple[str, str] | None:
    """(package, layer) of a service module, e.g. ("kariz_leads", "domain")."""
    parts = module.split(".")
    if parts[0] in SERVICE_PACKAGES and len(parts) > 1 and parts[1] in LAYERS:
        return parts[0], parts[1]
    return None


@pytest.mark.parametrize("package", sorted(SERVICE_PACKAGES))
def test_a_service_has_the_house_shape(package: str) -> None:
    present = {m.split(".")[1] for m in GRAPH if m.startswith(package + ".")}
    missing = {
        "domain",
        "service_layer",
        "adapters",
        "entrypoints",
        "bootstrap",
        "settings",
        "__main__",
    } - present
    assert not missing, f"{package} lacks {sorted(missing)}"
    for module in ("service_layer.unit_of_work", "service_layer.handlers", "entrypoints.http"):
        assert f"{package}.{module}" in GRAPH, f"{package} has no {module}"


def test_layers_point_inwards() -> None:
    wrong = []
    for module, targets in GRAPH.items():
        mine = layer_of(module)
        if mine is None:
            continue
        for target in targets:
            theirs = layer_of(target)
            if theirs and theirs[0] == mine[0] and LAYERS.index(theirs[1]) > LAYERS.index(mine[1]):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "an inner layer imports an outer one:\n" + "\n".join(sorted(wrong))


def test_a_domain_does_no_io() -> None:
    wrong = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if (layer_of(module) or ("", ""))[1] == "domain"
        for target in targets
        if target.split(".")[0] in IO_LIBRARIES
    ]
    assert not wrong, "a domain imports an I/O library:\n" + "\n".join(sorted(wrong))


def test_no_service_imports_another() -> None:
    wrong = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if module.split(".")[0] in SERVICE_PACKAGES
        for target in targets
        if target.split(".")[0] in SERVICE_PACKAGES - {module.split(".")[0]}
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_shared_knows_no_service_and_no_tool() -> None:
    wrong = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if module.startswith("kariz_shared")
        for target in targets
        if target.split(".")[0] in SERVICE_PACKAGES | TOOL_PACKAGES
    ]
    assert not wrong, "\n".join(sorted(wrong))


def shared_role(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "kariz_shared" and len(parts) > 1 and parts[1] in SHARED_ROLES else None


def test_shared_roles_point_inwards() -> None:
    wrong = []
    for module, targets in GRAPH.items():
        mine = shared_role(module)
        if mine is None:
            continue
        for target in targets:
            theirs = shared_role(target)
            if theirs and SHARED_ROLES.index(theirs) > SHARED_ROLES.index(mine):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_services_are_listed_once() -> None:
    """No code but the registry spells out the services one after another."""
    listing = re.compile(r"""["']leads["']\s*,\s*["']qualification["']""")
    offenders = []
    for src in [*SOURCES, ROOT / "tests", ROOT / "deploy"]:
        for file in src.rglob("*.py"):
            if file == ROOT / "shared/src/kariz_shared/system.py" or file == Path(__file__):
                continue
            if listing.search(file.read_text()):
                offenders.append(str(file.relative_to(ROOT)))
    assert not offenders, f"the service list is written again in {offenders}: read kariz_shared.system"
