"""The package's import rules, read from the source with `ast` (nothing is imported).

- Three rooms: `protocol` and `immuta` may import `framework`, never each other, and
  `framework` imports neither.
- Under `immuta/`, each resource and data source has its folder; folders never import each
  other, and the shared modules beside them never import a folder. Only `immuta/provider.py`,
  which lists what the provider offers, knows them all.
- No import cycles among runtime imports (imports inside functions count; those under
  `if TYPE_CHECKING:` do not).
- psycopg and boto3 stay off the plugin's start-up path: no module that the provider's
  construction imports (at module level, transitively) imports them at module level.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "tfprovider_immuta_pg"
SOURCE = Path(__file__).resolve().parents[1] / "src"
HEAVY = ("psycopg", "boto3", "botocore")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # a module of the package, or the top-level name of an outside one
    runtime: bool  # False under `if TYPE_CHECKING:`
    module_level: bool  # False inside a function


def modules(root: Path) -> dict[str, Path]:
    found = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if "gen" in parts:  # generated gRPC stubs
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(
    node: ast.AST, runtime: bool = True, module_level: bool = True
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, runtime, module_level
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for inner in child.body:
                yield from _walk(ast.Module(body=[inner], type_ignores=[]), False, module_level)
            for inner in child.orelse:
                yield from _walk(ast.Module(body=[inner], type_ignores=[]), runtime, module_level)
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, runtime, False)
        else:
            yield from _walk(child, runtime, module_level)


def imports(known: dict[str, Path]) -> list[Import]:
    found = []
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        for node, runtime, module_level in _walk(tree):
            for target in _targets(node, package, known):
                found.append(Import(name, target, runtime, module_level))
    return found


def _targets(node: ast.Import | ast.ImportFrom, package: str, known: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [_resolve(alias.name, known) for alias in node.names]
    if node.level:
        base = package.split(".")
        base = base[: len(base) - node.level + 1]
        origin = ".".join(base + ([node.module] if node.module else []))
    else:
        origin = node.module or ""
    # `from package import module` imports the module; `from module import name` the module.
    return [
        f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in known else _resolve(origin, known)
        for alias in node.names
    ]


def _resolve(name: str, known: dict[str, Path]) -> str:
    return name if name in known else name.split(".")[0]


def room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == PACKAGE else None


def resource_folder(module: str) -> str | None:
    """The resource or data-source folder a module belongs to, if any."""
    parts = module.split(".")
    if len(parts) >= 4 and parts[:2] == [PACKAGE, "immuta"]:
        return parts[2]
    return None


def folders(known: dict[str, Path]) -> set[str]:
    return {
        f for f in map(resource_folder, known) if f is not None and f"{PACKAGE}.immuta.{f}" in known
    }


def room_violations(found: list[Import]) -> list[str]:
    allowed = {"framework": {"framework"}, "protocol": {"framework", "protocol"}}
    allowed["immuta"] = {"framework", "immuta"}
    bad = []
    for i in found:
        source, target = room(i.source), room(i.target)
        if source in allowed and target is not None and target not in allowed[source]:
            bad.append(f"{i.source} imports {i.target}")
    return bad


def folder_violations(found: list[Import], known: dict[str, Path]) -> list[str]:
    names = folders(known)
    root = f"{PACKAGE}.immuta.provider"
    bad = []
    for i in found:
        target = resource_folder(i.target)
        if target not in names or i.source == root:
            continue
        source = resource_folder(i.source) if resource_folder(i.source) in names else None
        if source != target:
            where = f"resource folder {source}" if source else "shared module"
            bad.append(f"{i.source} ({where}) imports {i.target}")
    return bad


def cycles(found: list[Import]) -> list[list[str]]:
    """Every cycle of runtime imports between modules of the package (one per strongly
    connected component), found with Tarjan's algorithm."""
    graph: dict[str, set[str]] = {}
    for i in found:
        if i.runtime and room(i.target) is not None and i.source != i.target:
            graph.setdefault(i.source, set()).add(i.target)
            graph.setdefault(i.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
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
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def heavy_on_startup(found: list[Import], start: str) -> list[str]:
    """Modules loaded at module level from `start` that import psycopg or boto3 at module level."""
    eager: dict[str, set[str]] = {}
    for i in found:
        if i.runtime and i.module_level:
            eager.setdefault(i.source, set()).add(i.target)
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo += [t for t in eager.get(module, ()) if room(t) is not None]
    return sorted(
        f"{m} imports {t}" for m in seen for t in eager.get(m, ()) if t.split(".")[0] in HEAVY
    )


# ------------------------------------------------------------------ the package itself

KNOWN = modules(SOURCE)
FOUND = imports(KNOWN)


def test_the_three_rooms_import_one_way() -> None:
    assert room_violations(FOUND) == []


def test_resource_folders_and_shared_modules_keep_apart() -> None:
    assert folders(KNOWN) == {
        "aws_service_principal",
        "postgres_connection",
        "postgres_data_objects",
        "postgres_preflight",
        "user_mapping",
        "user_mappings",
    }
    assert folder_violations(FOUND, KNOWN) == []


def test_no_import_cycles() -> None:
    assert cycles(FOUND) == []


def test_psycopg_and_boto3_stay_off_the_startup_path() -> None:
    assert heavy_on_startup(FOUND, f"{PACKAGE}.immuta.provider") == []


@pytest.mark.parametrize("folder", sorted(folders(KNOWN)))
def test_each_folder_has_the_same_shape(folder: str) -> None:
    """A declaration, the class Terraform's operations reach, and the work behind it."""
    files = {p.name for p in (SOURCE / PACKAGE / "immuta" / folder).glob("*.py")}
    assert {"__init__.py", "schema.py", "worker.py"} <= files
    assert len(files & {"resource.py", "data_source.py"}) == 1


# ------------------------------------------------------------------ the checks catch breaches


@pytest.fixture
def tree(tmp_path: Path):
    def write(files: dict[str, str]) -> tuple[dict[str, Path], list[Import]]:
        for name, text in files.items():
            path = tmp_path / PACKAGE / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        known = modules(tmp_path)
        return known, imports(known)

    return write


def test_a_room_breach_is_reported(tree) -> None:
    _, found = tree(
        {
            "framework/schema.py": "from ..immuta import rules\n",
            "immuta/rules.py": "from ..protocol.codec import encode\n",
            "protocol/codec.py": "from ..framework import schema\n",
        }
    )
    assert room_violations(found) == [
        f"{PACKAGE}.framework.schema imports {PACKAGE}.immuta.rules",
        f"{PACKAGE}.immuta.rules imports {PACKAGE}.protocol.codec",
    ]


def test_folders_importing_each_other_or_from_shared_code_are_reported(tree) -> None:
    known, found = tree(
        {
            "immuta/provider.py": "from .a.resource import A\nfrom .b.resource import B\n",
            "immuta/store.py": "from .a.worker import helper\n",
            "immuta/a/__init__.py": "",
            "immuta/a/resource.py": "from ..b import worker\nfrom .. import store\n",
            "immuta/a/worker.py": "",
            "immuta/b/__init__.py": "",
            "immuta/b/resource.py": "from .worker import x\n",
            "immuta/b/worker.py": "",
        }
    )
    assert folder_violations(found, known) == [
        f"{PACKAGE}.immuta.a.resource (resource folder a) imports {PACKAGE}.immuta.b.worker",
        f"{PACKAGE}.immuta.store (shared module) imports {PACKAGE}.immuta.a.worker",
    ]


def test_a_cycle_through_a_lazy_import_is_reported_and_type_checking_is_not(tree) -> None:
    _, found = tree(
        {
            "immuta/a.py": "def f():\n    from .b import g\n",
            "immuta/b.py": "from .a import f\n",
            "immuta/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from .d import x\n",
            "immuta/d.py": "from .c import y\n",
        }
    )
    assert cycles(found) == [[f"{PACKAGE}.immuta.a", f"{PACKAGE}.immuta.b"]]


def test_psycopg_reached_at_module_level_is_reported(tree) -> None:
    _, found = tree(
        {
            "immuta/provider.py": "from . import store\nfrom . import lazy\n",
            "immuta/store.py": "import psycopg\n",
            "immuta/lazy.py": "def f():\n    import boto3\n",
        }
    )
    assert heavy_on_startup(found, f"{PACKAGE}.immuta.provider") == [
        f"{PACKAGE}.immuta.store imports psycopg"
    ]
