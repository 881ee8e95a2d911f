"""The package's modules import only downward, and no two modules import each other.

Layers, lowest first (issue #14): infrastructure and errors; configuration,
tokenizers and data; Keras layers; checkpoint formats; models; training (and
continued pretraining); compression and explanations; serving; the CLI. A
module may import its own layer or lower ones, at module level or inside a
function. Deprecation aliases (old paths kept for one release) are exempt:
they point at wherever their module went.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest
from tiny import REPO_ROOT, subprocess_env

PACKAGE = REPO_ROOT / "keras_bert_ft"

# Longest matching prefix wins. Deprecation aliases have no layer: no package module may
# import them (test_no_module_imports_a_deprecated_alias).
LAYER_OF = {
    "keras_bert_ft": 0,
    "keras_bert_ft._deprecation": 0,
    "keras_bert_ft._lazy": 0,
    "keras_bert_ft._unicode_data": 0,
    "keras_bert_ft._wordpiece": 0,
    "keras_bert_ft.errors": 0,
    "keras_bert_ft.infra": 0,
    "keras_bert_ft.config": 1,
    "keras_bert_ft.tokenizers": 1,
    "keras_bert_ft.long_documents": 1,
    "keras_bert_ft.data": 1,
    "keras_bert_ft.reports": 1,
    "keras_bert_ft.layers": 2,
    "keras_bert_ft.lora": 2,
    "keras_bert_ft.checkpoints": 3,
    "keras_bert_ft.models": 4,
    "keras_bert_ft.training": 5,
    "keras_bert_ft.pretraining": 5,
    "keras_bert_ft.compression": 6,
    "keras_bert_ft.explain": 6,
    "keras_bert_ft.explain_html": 6,
    "keras_bert_ft.serving": 7,
    "keras_bert_ft.saving": 7,
    "keras_bert_ft.cli": 8,
}
LAYER_NAMES = ["infrastructure", "config/tokenizers/data", "layers", "checkpoints", "models",
               "training", "compression", "serving", "cli"]  # fmt: skip

# The layer a module sits in; the package root only re-exports lazily (__getattr__).
def layer_of(module: str) -> int:
    best = max((p for p in LAYER_OF if module == p or module.startswith(p + ".")), key=len,
               default=None)  # fmt: skip
    if best is None:
        raise AssertionError(f"{module} is not placed in a layer: add it to LAYER_OF")
    return LAYER_OF[best]


def module_name(path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_alias(source: str) -> bool:
    return "alias_module(__name__" in source


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
REAL_MODULES = {m: p for m, p in MODULES.items() if not is_alias(p.read_text())}


def imports_of(module: str) -> set[str]:
    """The package modules `module` imports; `from X import m` counts X.m when m is a module."""
    tree = ast.parse(MODULES[module].read_text())
    for node in ast.walk(tree):  # imports for type checkers only never run
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = [f"{node.module}.{a.name}" for a in node.names]
            names = [n for n in submodules if n in MODULES] or [node.module]
        else:
            continue
        found.update(n for n in names if n in MODULES and n != module)
    return found


def test_every_module_has_a_layer():
    for module in REAL_MODULES:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(m for m in REAL_MODULES if m != "keras_bert_ft"))
def test_imports_point_downward(module):
    mine = layer_of(module)
    upward = sorted(f"{target} ({LAYER_NAMES[layer_of(target)]})"
                    for target in imports_of(module) & REAL_MODULES.keys()
                    if target != "keras_bert_ft" and layer_of(target) > mine)  # fmt: skip
    assert not upward, f"{module} ({LAYER_NAMES[mine]}) imports upward: {upward}"


def test_no_module_imports_a_deprecated_alias():
    aliases = set(MODULES) - set(REAL_MODULES)
    assert aliases, "the old import paths are gone: drop this test with them"
    users = {m: sorted(imports_of(m) & aliases) for m in REAL_MODULES}
    assert not any(users.values()), {m: a for m, a in users.items() if a}


def test_no_import_cycle():
    # Imports inside functions count too: a cycle there is still two modules that need
    # each other. Deprecation aliases are left out (they import their new home only).
    graph = {m: imports_of(m) for m in REAL_MODULES}
    # A submodule import also runs its package's __init__.
    for module in REAL_MODULES:
        for target in list(graph[module]):
            parent = target.rpartition(".")[0]
            # (the root package is always initialised first, so it is left out)
            while "." in parent and parent != module and not module.startswith(parent + "."):
                if parent in REAL_MODULES:
                    graph[module].add(parent)
                parent = parent.rpartition(".")[0]
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(t for t in graph[node] if t in REAL_MODULES):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


LOADED = """
import importlib, json, pkgutil, sys, warnings
warnings.simplefilter("ignore", DeprecationWarning)
root = importlib.import_module(sys.argv[1])
names = [sys.argv[1]]
if hasattr(root, "__path__"):
    names += [m.name for m in pkgutil.walk_packages(root.__path__, sys.argv[1] + ".")]
for name in names:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m.startswith("keras_bert_ft"))))
"""

# Each layer's entry point, imported with all of its submodules in a fresh interpreter.
SUBPACKAGES = ["keras_bert_ft.errors", "keras_bert_ft.config", "keras_bert_ft.tokenizers",
               "keras_bert_ft.data", "keras_bert_ft.layers", "keras_bert_ft.checkpoints",
               "keras_bert_ft.models", "keras_bert_ft.training", "keras_bert_ft.compression",
               "keras_bert_ft.serving"]  # fmt: skip


@pytest.mark.parametrize("package", [p for p in SUBPACKAGES if p in MODULES])
def test_a_fresh_import_loads_no_higher_layer(package):
    proc = subprocess.run([sys.executable, "-c", LOADED, package], capture_output=True,
                          text=True, env=subprocess_env(), cwd=REPO_ROOT, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    mine = layer_of(package)
    higher = [m for m in loaded if m in REAL_MODULES and m != "keras_bert_ft"
              and layer_of(m) > mine]  # fmt: skip
    assert not higher, f"importing {package} loaded higher layers: {higher}"
