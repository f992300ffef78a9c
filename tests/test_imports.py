"""Every module imports on its own, and no two modules import each other at load time."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ccub", "finetune", "benchmark", "data_cards")


def module_names() -> dict[str, Path]:
    names = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def load_time_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Our modules that importing `name` imports: statements run at load time (not inside functions,
    not under `if TYPE_CHECKING`), and the packages above each of them."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, ast.If | ast.Try | ast.With):
                for block in ("body", "orelse", "finalbody", "handlers"):
                    for part in getattr(node, block, []):
                        visit(part.body if isinstance(part, ast.ExceptHandler) else [part])
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)

    visit(ast.parse(path.read_text("utf-8")).body)
    with_parents = {".".join(m.split(".")[:i]) for m in found for i in range(1, m.count(".") + 2)}
    # Python runs a module's own packages before the module: importing them back is no cycle.
    own_packages = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
    return {m for m in with_parents if m in known and m not in own_packages}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := walk(node)):
            return cycle
    return None


def test_the_cycle_finder_sees_a_planted_cycle_and_a_relative_import(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    module = tmp_path / "m.py"
    module.write_text("from typing import TYPE_CHECKING\nfrom . import sibling\nif TYPE_CHECKING:\n"
                      "    import pkg.typing_only\ndef f():\n    import pkg.lazy\n", "utf-8")
    known = {"pkg", "pkg.sibling", "pkg.typing_only", "pkg.lazy", "pkg.m"}
    assert load_time_imports("pkg.m", module, known) == {"pkg.sibling"}


def test_no_module_imports_itself_back_at_load_time():
    names = module_names()
    graph = {name: load_time_imports(name, path, set(names)) for name, path in names.items()}
    assert "ccub.commands.common" in graph["ccub.commands.validate"], "the graph sees our imports"
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


# One interpreter per worker: third-party packages (torch takes seconds) stay loaded, and every
# project module is dropped from sys.modules before the next is imported, so each project module
# still runs its imports from a clean start, which is what a cycle needs to show.
IMPORT_EACH = """
import importlib, json, sys, traceback
failed = {}
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m.split(".")[0] in %r]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc()[-2000:]
print(json.dumps(failed))
"""


def import_each_alone(names: list[str]) -> dict[str, str]:
    done = subprocess.run([sys.executable, "-c", IMPORT_EACH % (PACKAGES,), *names], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_every_module_imports_on_its_own():
    names = sorted(n for n in module_names() if not n.endswith("__main__"))  # `python -m` runs those
    workers = os.cpu_count() or 2
    with ThreadPoolExecutor(max_workers=workers) as pool:
        failed = {k: v for part in pool.map(import_each_alone, [names[i::workers] for i in range(workers)])
                  for k, v in part.items()}
    assert not failed, "\n\n".join(f"import {n}:\n{e}" for n, e in failed.items())


def test_the_import_check_sees_a_module_that_cannot_import_alone(tmp_path, monkeypatch):
    (tmp_path / "ccub_cycle_a.py").write_text("import ccub_cycle_b\nVALUE = 1\n")
    (tmp_path / "ccub_cycle_b.py").write_text("from ccub_cycle_a import VALUE\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setattr(sys.modules[__name__], "PACKAGES", ("ccub_cycle_a", "ccub_cycle_b"))
    failed = import_each_alone(["ccub_cycle_b", "ccub_cycle_a"])
    assert list(failed) == ["ccub_cycle_a"] and "ImportError" in failed["ccub_cycle_a"]
