"""The package's shape, read from its source (ast, nothing imported): every module name once,
and no import cycle between its parts (a subpackage or a top-level module of src/ecg_mi)."""

import ast
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "src" / "ecg_mi"
# Names that repeat by convention, never imported bare: a package's own file, and the abstract
# base of a family package (learners/base.py, models/base.py).
SHARED_NAMES = {"__init__", "base"}


def repeated_names(root: Path) -> dict[str, list[str]]:
    """Module names (file stems) found more than once under ``root`` outside :data:`SHARED_NAMES`,
    with their paths."""
    paths = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        paths[path.stem].append(str(path.relative_to(root)))
    return {name: found for name, found in paths.items() if len(found) > 1 and name not in SHARED_NAMES}


def imported_parts(path: Path, root: Path) -> set[str]:
    """The parts of the package (first name under it) that the module at ``path`` imports,
    anywhere in the file: an import inside a function is a dependency too."""
    package, here = root.name, path.relative_to(root).parts
    parts = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = [package, *here[:-1]][: len(here) - node.level + 1] if node.level else []
            module = [*base, *(node.module.split(".") if node.module else [])]
            names = [[*module, alias.name] for alias in node.names]
        else:
            continue
        parts |= {name[1] for name in names if name[0] == package and len(name) > 1}
    return parts


def import_graph(root: Path) -> dict[tuple[str, str], list[str]]:
    """Edges ``(part, imported part)`` between different parts of the package at ``root``, each
    with the files that make it."""
    edges = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        part = path.relative_to(root).parts[0].removesuffix(".py")
        for other in imported_parts(path, root) - {part}:
            edges[(part, other)].append(str(path.relative_to(root)))
    return dict(edges)


def find_cycle(edges: dict[tuple[str, str], list[str]]) -> list[str] | None:
    """One cycle of the graph as the parts along it (first = last), or None (depth-first search)."""
    after = defaultdict(list)
    for a, b in sorted(edges):
        after[a].append(b)
    state: dict[str, str] = {}  # "open" while on the path, then "done"

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in after[node]:
            if state.get(nxt) == "open":
                return [*path[path.index(nxt):], node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, node])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(after):
        if start not in state and (cycle := visit(start, [])):
            return cycle
    return None


def describe(cycle: list[str], edges: dict[tuple[str, str], list[str]]) -> str:
    return " -> ".join(cycle) + "; " + "; ".join(f"{a} -> {b}: {', '.join(edges[(a, b)])}"
                                                 for a, b in pairwise(cycle))  # fmt: skip


def test_no_two_modules_of_the_package_share_a_name():
    assert not repeated_names(PACKAGE), f"module names used twice: {repeated_names(PACKAGE)}"


def test_the_parts_of_the_package_import_each_other_without_a_cycle():
    edges = import_graph(PACKAGE)
    cycle = find_cycle(edges)
    assert cycle is None, f"import cycle: {describe(cycle, edges)}"


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_name_repeated_in_two_subpackages_is_found_but_init_and_base_are_not(tmp_path):
    root = _write(tmp_path / "ecg_mi", {"calibration.py": "", "evaluate/calibration.py": "", "a/__init__.py": "",
                                        "b/__init__.py": "", "a/base.py": "", "b/base.py": ""})  # fmt: skip
    assert repeated_names(root) == {"calibration": ["calibration.py", "evaluate/calibration.py"]}


def test_a_cycle_through_a_lazy_relative_and_a_top_level_import_is_found_and_named(tmp_path):
    root = _write(tmp_path / "ecg_mi", {
        "data/store.py": "from ecg_mi.features.delineate import bandpass\n",
        "features/delineate.py": "def f():\n    from .. import packaging\n",
        "packaging.py": "from ecg_mi.data import store\n",
        "explain/gradcam.py": "from ecg_mi.data.store import x\nfrom . import figures\n",
    })  # fmt: skip
    edges = import_graph(root)
    assert set(edges) == {("data", "features"), ("features", "packaging"), ("packaging", "data"),
                          ("explain", "data")}  # fmt: skip
    cycle = find_cycle(edges)
    assert cycle == ["data", "features", "packaging", "data"]
    assert "features -> packaging: features/delineate.py" in describe(cycle, edges)
    assert find_cycle({k: v for k, v in edges.items() if k != ("packaging", "data")}) is None
