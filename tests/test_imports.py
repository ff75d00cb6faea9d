"""The import structure of the package: no cycle among its modules (imports under
TYPE_CHECKING included: a cycle there is still two modules that cannot be read apart), and the
CLI does not load the benchmark harness."""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "crawler"


def module_imports() -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports (from its source).
    ``from crawler import runtime`` imports the module ``crawler.runtime``, not the package's
    ``__init__`` (which every submodule's import runs first anyway)."""
    sources = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        sources[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in sources.items():
        named: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    named.add(submodule if submodule in sources else node.module)
            elif isinstance(node, ast.Import):
                named.update(alias.name for alias in node.names)
        graph[name] = {m for m in named if m in sources and m != name}
    return graph


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = module_imports()
    assert graph.get("crawler.engine")  # the scan sees the package
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None


def test_the_cli_does_not_import_the_benchmark_harness() -> None:
    script = (
        "import sys, crawler.cli, crawler.cli.app; "
        "print(sorted(m for m in sys.modules if m.startswith('crawler.bench')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_the_stages_import_each_other_in_one_direction() -> None:
    """The subpackages (frontier, fetch, parse, store, ...) form layers: if a module of one
    imports a module of another, no module of the second imports one of the first."""
    stage_of = {m: m.split(".")[1] for m in module_imports() if m.count(".") >= 2}
    graph: dict[str, set[str]] = {}
    for module, imported in module_imports().items():
        if module in stage_of:
            others = {stage_of[m] for m in imported if m in stage_of}
            graph.setdefault(stage_of[module], set()).update(others - {stage_of[module]})
    assert {"frontier", "fetch", "parse", "store", "archive", "observe", "cli"} <= set(graph)
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        raise AssertionError(f"stages in a cycle: {' -> '.join(error.args[1])}") from None
