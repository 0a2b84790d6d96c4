"""The rooms of the code base and the one direction of imports between them (docs/architecture.md).

Every module of `evmonitor/`, `workers/`, `beat/` and `bench/` belongs to exactly one room; a room
may import only the rooms listed for it below. The imports are read with `ast` (every import
statement, also those inside functions), so a new module or a new import that goes the wrong way
fails here, not in a review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("evmonitor", "workers", "beat", "bench")

# module prefix -> room; the longest matching prefix wins
ROOM_OF: dict[str, str] = {
    "evmonitor": "core",
    "evmonitor.config": "core",
    "evmonitor.contract": "core",
    "evmonitor.deadletter": "core",
    "evmonitor.errors": "core",
    "evmonitor.fold": "core",
    "evmonitor.names": "core",
    "evmonitor.days": "core",
    "evmonitor.poison": "core",
    "evmonitor.runtime": "core",
    "evmonitor.transport": "core",
    "evmonitor.taskmetrics": "core",
    "evmonitor.heartbeat": "core",
    "evmonitor.storage": "core",
    "evmonitor.bridge": "core",
    "evmonitor.reports": "reports",
    "evmonitor.ledger": "ledger",
    "evmonitor.simulator": "simulator",
    "evmonitor.gateway": "gateway",
    "workers": "workers",
    "beat": "beat",
    "evmonitor.app": "app",
    "evmonitor.stack": "stack",
    "evmonitor.api": "api",
    "evmonitor.cli": "cli",
    "evmonitor.cli_operator": "cli",
    "evmonitor.cli_support": "cli",
    "evmonitor.__main__": "cli",
    "bench": "bench",
}

# room -> the rooms it may import (itself included)
MAY_IMPORT: dict[str, set[str]] = {
    "core": {"core"},  # the pipeline: contract, fold, dead letters, storage, bridge, settings, errors
    "reports": {"core", "reports"},  # turning report values into pages
    "ledger": {"core", "ledger"},  # the outage ledger read and annotated: uptime figures, causes (beat draws it)
    "simulator": {"core", "simulator"},  # a producer, like the gateway
    "gateway": {"core", "gateway"},  # real chargers in
    "workers": {"core", "workers"},  # never beat
    "beat": {"core", "reports", "ledger", "beat"},  # never workers
    "app": {"core", "workers", "ledger", "beat", "app"},  # the Celery app composes workers and beat
    "api": {"core", "reports", "ledger", "api"},  # operators: REST API, live page, metrics; never workers, beat, stack, cli
    "stack": {"core", "reports", "ledger", "simulator", "gateway", "workers", "beat", "app", "api", "stack"},  # run and prove
    "cli": {"core", "reports", "ledger", "simulator", "gateway", "workers", "beat", "app", "api", "stack", "cli"},
    "bench": {"core", "reports", "ledger", "simulator", "gateway", "workers", "beat", "app", "stack", "bench"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


MODULES = all_modules()


def room(module: str) -> str | None:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        found = ROOM_OF.get(".".join(parts[:n]))
        if found:
            return found
    return None


def imports_of(module: str, path: Path) -> set[str]:
    """The project modules `module` imports (a `from pkg import name` counts pkg.name if it is a module)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in PACKAGES:
                while target not in MODULES and "." in target:
                    target = target.rsplit(".", 1)[0]
                found.add(target)
    found.discard(module)
    return found


GRAPH = {module: imports_of(module, path) for module, path in MODULES.items()}


def test_every_module_has_a_room():
    """A new module must be placed in a room before it can be imported by anything."""
    assert [m for m in MODULES if room(m) is None] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_one_way(module):
    """No module imports a room above its own (the core imports no worker, beat, CLI or proving tool)."""
    mine = room(module)
    wrong = sorted(f"{target} ({room(target)})" for target in GRAPH[module] if room(target) not in MAY_IMPORT[mine])
    assert wrong == [], f"{module} ({mine}) may import only {sorted(MAY_IMPORT[mine])}"


def test_workers_and_beat_do_not_import_each_other():
    """Celery composes the two task rooms (evmonitor.app); neither knows the other."""
    crossing = sorted(
        (m, t) for m, targets in GRAPH.items() for t in targets if {room(m), room(t)} == {"workers", "beat"}
    )
    assert crossing == []


def test_no_import_cycles():
    """The module graph is acyclic: every module can be understood from the ones below it."""
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycles.append(trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_walk_sees_imports_inside_functions():
    """The checker is not blind: the CLI's imports inside command functions are found."""
    assert "evmonitor.stack.supervisor" in GRAPH["evmonitor.cli"]
    assert "evmonitor.app" in GRAPH["evmonitor.cli"]


@pytest.mark.parametrize("package", sorted(m for m, p in MODULES.items() if p.name == "__init__.py"))
def test_every_package_says_what_it_is_for_and_what_it_exports(package):
    """Each package's __init__ has a docstring and an __all__ of names it really provides."""
    path = MODULES[package]
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree), f"{path} has no docstring"
    exported = next(
        (node.value for node in tree.body if isinstance(node, ast.Assign)
         and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)),
        None,
    )  # fmt: skip
    assert exported is not None, f"{path} has no __all__"
    names = {elt.value for elt in exported.elts}  # type: ignore[attr-defined]
    defined = {alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    defined |= {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}
    # names imported on first use (a PEP 562 `__getattr__`), listed in a `_LAZY = {name: module}` dict
    defined |= {key.value for node in tree.body if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                and any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets)
                for key in node.value.keys if isinstance(key, ast.Constant)}  # fmt: skip
    assert names <= defined, f"{path}: __all__ names {sorted(names - defined)} that it does not define"
