"""The package's layers: a module imports only from its own layer or the layers below it, lazily or not.

The layers, lowest first (each subpackage's ``__init__`` says why it sits where it does); components on
one line are siblings and import nothing from each other:

    errors                the error family, the version string, the library noise silenced in zoo calls
    data                  where models and data come from: sources, base ids, tasks, metrics
    config                what a user writes: recipes, overrides, prompt formats, generation settings
    artifact              what a run leaves: the adapter record (zoo.json), its files, cards, plots
    models | hub          loading base models (and 4-bit) | publishing and finding adapters
    methods               one module per method: train, save, serve, describe
    training | serve      train(recipe) | the registry, routing and loaders
    demo                  the Gradio Space's engine and page
    server                zoo serve: the catalogue engine behind HTTP (OpenAI-compatible), metrics
    api                   zoo/__init__, the CLI, zoo.testing

The checker reads the source (no imports run), so it sees imports inside functions and
``TYPE_CHECKING`` blocks as well as those at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "zoo"
LAYERS = [("errors",), ("data",), ("config",), ("artifact",), ("models", "hub"), ("methods",),
          ("training", "serve", "catalogue"), ("demo",), ("server",), ("api",)]
TOP_MODULES = {"errors": "errors", "_version": "errors", "_quiet": "errors", "cli": "api", "testing": "api", "__main__": "api"}
# Lazy imports of the zoo's own modules are kept only where they save start-up time: `import zoo` and
# `zoo --help` must not pay for torch, transformers and PEFT.
LAZY_ALLOWED = {"zoo", "zoo.cli"}


def component(module: str) -> str:
    parts = module.split(".")
    if parts == ["zoo"]:
        return "api"
    if len(parts) == 2 and parts[1] in TOP_MODULES:
        return TOP_MODULES[parts[1]]
    return parts[1]


def rank(comp: str) -> int:
    for i, layer in enumerate(LAYERS):
        if comp in layer:
            return i
    raise AssertionError(f"component {comp!r} is in no layer; add it to LAYERS (and to the README's list)")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(module: str, source: str, *, is_package: bool = False) -> list[tuple[str, int, bool]]:
    """(imported zoo module, line, lazy) for every import of the zoo's own code in ``source``."""
    tree = ast.parse(source)
    top = {id(n) for n in tree.body}
    found = []
    package = module if is_package else module.rpartition(".")[0]

    def add(target: str, node: ast.AST):
        if target == "zoo" or target.startswith("zoo."):
            found.append((target, node.lineno, id(node) not in top))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from zoo.serve import registry` runs zoo/serve/__init__ and imports registry
                sub = f"{target}.{alias.name}"
                is_module = ((PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").exists()
                             or (PACKAGE.parent / Path(*sub.split("."))).is_dir())
                add(target, node)
                if is_module:
                    add(sub, node)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            add(node.args[0].value, node)
    return found


def violations(module: str, source: str, *, is_package: bool = False) -> list[str]:
    """Imports in ``source`` (the text of ``module``) that go up a layer, or sideways to a sibling."""
    out = []
    own = component(module)
    for target, line, lazy in imports(module, source, is_package=is_package):
        other = component(target)
        if other == own:
            if lazy and module not in LAZY_ALLOWED and target != module:
                out.append(f"{module}:{line}: lazy import of {target} (import it at the top)")
            continue
        if rank(other) > rank(own):
            out.append(f"{module}:{line}: imports {target} from a higher layer ({own} -> {other})")
        elif rank(other) == rank(own):
            out.append(f"{module}:{line}: imports {target} from its sibling layer ({own} -> {other})")
        elif lazy and module not in LAZY_ALLOWED:
            out.append(f"{module}:{line}: lazy import of {target} (import it at the top, or justify it in LAZY_ALLOWED)")
    return out


def package_modules() -> dict[str, tuple[Path, str]]:
    return {module_name(p): (p, p.read_text(encoding="utf-8")) for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_imports_up_a_layer():
    problems = []
    for module, (path, source) in package_modules().items():
        problems += violations(module, source, is_package=path.name == "__init__.py")
    assert not problems, "layer violations:\n" + "\n".join(problems)


def test_every_component_is_a_documented_layer():
    for module, (path, source) in package_modules().items():
        rank(component(module))
        if path.name == "__init__.py" and module != "zoo":
            doc = ast.get_docstring(ast.parse(source))
            assert doc and len(doc) > 80, f"{module}: the layer's __init__ must say why it sits where it does"


def test_import_graph_is_a_dag():
    modules = package_modules()
    graph = {m: sorted({t for t, _, _ in imports(m, src, is_package=p.name == "__init__.py")
                        if t in modules and t != m and t != "zoo"}) for m, (p, src) in modules.items()}
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for n in graph[m]:
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


@pytest.mark.parametrize("module, source, expected", [
    ("zoo.data.tasks", "from zoo.serve.registry import Zoo", "from a higher layer"),
    ("zoo.data.tasks", "def f():\n    from zoo.serve import registry\n", "from a higher layer"),
    ("zoo.config.recipe", "if TYPE_CHECKING:\n    from zoo.training.common import TrainResult\n", "from a higher layer"),
    ("zoo.training.causal", "from zoo.serve.loading import load", "sibling"),
    ("zoo.artifact.card", "from .. import __version__", "from a higher layer"),
    ("zoo.methods.lora", "import importlib\nimportlib.import_module('zoo.demo.app')", "from a higher layer"),
    ("zoo.serve.registry", "def f():\n    from zoo.hub.local import LocalHub\n", "lazy import"),
])
def test_the_checker_catches_upward_and_lazy_imports(module, source, expected):
    found = violations(module, source)
    assert found and expected in found[0], found


def test_a_package_imported_by_its_own_submodule_is_a_cycle():
    modules = {"zoo.methods": ("from zoo.methods.lora import LORA", True),
               "zoo.methods.lora": ("from zoo.methods import peft_common", False),
               "zoo.methods.peft_common": ("", False)}
    edges = {m: {t for t, _, _ in imports(m, src, is_package=pkg)} for m, (src, pkg) in modules.items()}
    assert "zoo.methods" in edges["zoo.methods.lora"], "`from PKG import sub` runs PKG/__init__: an edge to PKG"
    assert edges["zoo.methods.lora"] == {"zoo.methods", "zoo.methods.peft_common"}


def test_the_checker_accepts_downward_imports():
    assert violations("zoo.serve.registry", "from zoo.hub.local import LocalHub\nfrom zoo.errors import BadInput") == []
    assert violations("zoo.cli", "def f():\n    from zoo.serve.loading import load\n") == []
