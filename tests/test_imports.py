"""Every module imports, and every name the notebooks import from workbench exists.

The methods' report notebooks run only in the benchmarks (minutes each); a module that no
longer parses, or a notebook importing a name that moved, would otherwise first fail there.
"""

import ast
import importlib
import importlib.util
import json
import pkgutil
from pathlib import Path

import pytest

import workbench

ROOT = Path(__file__).resolve().parents[1]
#: ``workbench.__main__`` runs the command line when imported: not a library module.
MODULES = sorted(m.name for m in pkgutil.walk_packages(workbench.__path__, "workbench.")
                 if not m.name.endswith(".__main__"))
NOTEBOOKS = sorted((ROOT / "notebooks").rglob("*.ipynb"))


@pytest.mark.parametrize("name", MODULES)
def test_every_module_imports(name):
    importlib.import_module(name)


def _workbench_imports(notebook: Path) -> list[tuple[str, str]]:
    """``(module, name)`` of every ``from workbench... import name`` in the notebook's code cells."""
    cells = json.loads(notebook.read_text())["cells"]
    found = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("workbench"):
                found += [(node.module, alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_name_a_notebook_imports_from_workbench_exists(notebook):
    imports = _workbench_imports(notebook)
    missing = [f"{module}.{name}" for module, name in imports
               if not hasattr(importlib.import_module(module), name)
               and importlib.util.find_spec(f"{module}.{name}") is None]
    assert not missing, f"{notebook} imports {missing}"
