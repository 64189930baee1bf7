"""Print the package's layers, each module's line count, and its import DAG (what each module imports from zoo).

    .venv/bin/python scripts/import_dag.py

The rules themselves are tests/test_layers.py's; this only shows what they check.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_layers import LAYERS, component, imports, package_modules, rank  # noqa: E402


def main() -> None:
    modules = package_modules()
    for i, layer in enumerate(LAYERS):
        print(f"layer {i}: {' | '.join(layer)}")
        for name in sorted(m for m in modules if rank(component(m)) == i):
            path, source = modules[name]
            deps = sorted({t for t, _, _ in imports(name, source, is_package=path.name == "__init__.py")
                           if t in modules and t != name})
            print(f"  {name:28} {len(source.splitlines()):4} lines  -> {', '.join(deps) or '-'}")


if __name__ == "__main__":
    main()
