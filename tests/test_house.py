"""The package as a user meets it before any model: a fast start, no import-time side effects, one error family."""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys

import pytest

import zoo
import zoo.errors
from tests.conftest import ROOT

HEAVY = ("torch", "transformers", "peft", "datasets", "gradio")


def heavy_modules_after(code: str, env=None) -> list[str]:
    probe = ("import atexit, json, sys\n"
             f"atexit.register(lambda: print('HEAVY', json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules))))\n")
    out = subprocess.run([sys.executable, "-c", probe + code], cwd=ROOT, capture_output=True, text=True, env=env)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("HEAVY ")]
    assert line, out.stderr[-2000:]
    return json.loads(line[-1][6:])


@pytest.mark.parametrize("code", [
    "import zoo; zoo.Recipe; zoo.load_recipe; zoo.ZooError",
    "import sys; sys.argv = ['zoo', '--help']\nfrom zoo.cli import main\nmain()",
    "import sys; sys.argv = ['zoo', 'list', '--hub', 'local']\nfrom zoo.cli import main\nmain()",
])
def test_import_help_and_list_do_not_load_torch_transformers_or_peft(code, tmp_path):
    import os

    assert heavy_modules_after(code, env={**os.environ, "ZOO_HOME": str(tmp_path)}) == []


def third_party_imports() -> list[str]:
    """Every library the package imports, anywhere (their own import-time effects are theirs, not the zoo's)."""
    names = set()
    for path in (ROOT / "zoo").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):  # the modules themselves: `from ray import serve` runs ray.serve's import
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)  # and what may be a submodule of it (tried; a name that is not is skipped)
                names.update(f"{node.module}.{a.name}" for a in node.names)
    return sorted(n for n in names if n.split(".")[0] != "zoo" and n.split(".")[0] not in sys.stdlib_module_names)


def test_import_zoo_installs_no_filters_and_sets_no_environment():
    libraries = third_party_imports()
    assert {"torch", "transformers", "peft"} <= set(libraries) and any(n.startswith("sklearn") for n in libraries)
    code = ("import logging, os, warnings, json, importlib, pkgutil\n"
            f"for name in {libraries!r}:\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except ImportError:\n"
            "        pass\n"
            "filters, env = list(warnings.filters), dict(os.environ)\n"
            "loggers = {n: list(l.filters) for n, l in logging.Logger.manager.loggerDict.items() if hasattr(l, 'filters')}\n"
            "import zoo\n"
            "for m in pkgutil.walk_packages(zoo.__path__, 'zoo.'):\n"
            "    if m.name != 'zoo.__main__':\n"
            "        importlib.import_module(m.name)\n"
            "after = {n: list(l.filters) for n, l in logging.Logger.manager.loggerDict.items() if hasattr(l, 'filters')}\n"
            "changed = sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k))\n"
            "print(json.dumps([warnings.filters == filters, changed,\n"
            "                  {n: len(f) for n, f in after.items() if f != loggers.get(n, [])}]))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    same_filters, changed_env, new_log_filters = json.loads(out.stdout.strip().splitlines()[-1])
    assert same_filters, "importing zoo changed warnings.filters"
    assert changed_env == [], f"importing zoo changed os.environ: {changed_env}"
    assert new_log_filters == {}, f"importing zoo added logging filters: {new_log_filters}"


def test_every_error_is_one_family_exported_from_zoo_and_a_builtin_refinement():
    classes = [c for _, c in inspect.getmembers(zoo.errors, inspect.isclass) if c.__module__ == "zoo.errors"]
    assert len(classes) >= 15
    for cls in classes:
        assert getattr(zoo, cls.__name__) is cls, f"{cls.__name__} is not exported from zoo"
        if cls is not zoo.ZooError:
            assert issubclass(cls, zoo.ZooError)
            builtins = [b for b in cls.__mro__ if b.__module__ == "builtins" and b not in (Exception, BaseException, object)]
            assert builtins, f"{cls.__name__} refines no builtin exception"
    assert issubclass(zoo.BadInput, ValueError) and issubclass(zoo.AdapterNotFound, LookupError)
    assert issubclass(zoo.ModelNotFound, LookupError) and issubclass(zoo.UnknownTask, LookupError)


def test_no_error_class_is_defined_outside_errors_py():
    # not errors of the zoo: an HTTP reply raised inside the hub server's request handlers, and the card check's
    # signal that the server turns into one
    allowed = {("zoo/hub/requests.py", "HttpReply"), ("zoo/hub/repo_store.py", "BadCard")}
    found = []
    for path in sorted((ROOT / "zoo").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and rel != "zoo/errors.py" and (rel, node.name) not in allowed:
                bases = {ast.unparse(b) for b in node.bases}
                if bases & {"Exception", "ZooError", "ValueError", "RuntimeError", "LookupError"} or node.name.endswith("Error"):
                    found.append(f"{rel}: {node.name}")
    assert found == []


def test_demo_without_gradio_says_how_to_install_it(tmp_path):
    import os

    code = "import sys; sys.modules['gradio'] = None; sys.argv = ['zoo', 'demo']\nfrom zoo.cli import main\nmain()"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "ZOO_HOME": str(tmp_path)})
    assert out.returncode == 2
    assert "pip install 'adapter-zoo[space]'" in out.stderr and "Traceback" not in out.stderr


def test_quiet_from_many_threads_leaves_the_filters_as_it_found_them():
    import threading
    import warnings

    from zoo._quiet import quiet

    warnings.filterwarnings("ignore", message="a user's own filter")
    before = list(warnings.filters)
    unfiltered = []

    def work():
        for _ in range(200):
            with quiet():  # inside every call, whatever the other threads do, the filters are there
                if not any(f[1] is not None and f[1].pattern.startswith("Position ids") for f in warnings.filters):
                    unfiltered.append(1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not unfiltered
    assert warnings.filters == before
