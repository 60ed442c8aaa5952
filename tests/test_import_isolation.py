"""tfbundle and recovery run on Beam workers and in notebooks: they must not pull in TensorFlow or Beam.
And the floors (docs/architecture.md) only import downwards: no module, template or resource of a
higher floor is reached from a lower one, nor samples from pipeline's side."""

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHECK = """
import importlib, pkgutil, sys
import tfbundle, recovery
for package in (tfbundle, recovery):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
print(" ".join(sorted(name for name in ("tensorflow", "apache_beam", "keras", "tf_keras") if name in sys.modules)))
print(len([name for name in sys.modules if name.startswith(("tfbundle.", "recovery."))]))
"""


def test_format_and_recovery_modules_import_neither_tensorflow_nor_beam():
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    heavy, imported = result.stdout.splitlines()
    assert heavy == "", f"imported {heavy}"
    assert int(imported) >= 15   # the walk did reach the modules


WORKER_CHECK = """
import importlib, pkgutil, sys
import transforms
for module in pkgutil.walk_packages(transforms.__path__, "transforms."):
    importlib.import_module(module.name)
import pipeline.audit_pipeline
print(" ".join(sorted(name for name in ("tensorflow", "keras", "tf_keras") if name in sys.modules)))
print("apache_beam" in sys.modules)
"""


def test_beam_worker_code_does_not_import_tensorflow():
    """Workers unpickle the transforms and run the recovery logic; TensorFlow stays on the launcher."""
    result = subprocess.run([sys.executable, "-c", WORKER_CHECK], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    heavy, beam_loaded = result.stdout.splitlines()
    assert heavy == "", f"imported {heavy}"
    assert beam_loaded == "True"   # the walk did load the Beam code it checks


# What each floor may import or name in a lookup (docs/architecture.md): arrows point down only.
FLOORS = {
    "tfbundle": {"tfbundle"},
    "recovery": {"tfbundle", "recovery"},
    "transforms": {"tfbundle", "recovery", "transforms"},
    "samples": {"samples"},
    "pipeline": {"tfbundle", "recovery", "transforms", "samples", "pipeline"},
}
PROJECT_PACKAGES = set(FLOORS) | {"benchmarks", "tests"}
# A string such as "pipeline.resources", "pipeline/resources/x.yaml" or "samples.models:f": a module,
# template or resource found by name rather than by import.
NAMED_LOOKUP = re.compile(r"^(" + "|".join(sorted(PROJECT_PACKAGES)) + r")[.:/]")


def _docstrings(tree) -> set:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _references(path: Path, package_parts: tuple):
    """(line, package) of every project package a module of `package_parts` imports (at any depth, so
    a lazy import inside a function counts) or names in a string."""
    tree = ast.parse(path.read_text(), str(path))
    words = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package_parts[: len(package_parts) - node.level + 1] if node.level else ()
            yield node.lineno, ".".join([*base, node.module or ""]).split(".")[0]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in words:
            match = NAMED_LOOKUP.match(node.value)
            if match:
                yield node.lineno, match.group(1)


def test_no_import_template_or_resource_lookup_runs_upward_between_floors():
    upward = []
    for floor, allowed in FLOORS.items():
        for path in sorted((REPO / floor).rglob("*.py")):
            package_parts = path.relative_to(REPO).parent.parts
            upward += [f"{path.relative_to(REPO)}:{line}: {floor} -> {package}"
                       for line, package in _references(path, package_parts)
                       if package in PROJECT_PACKAGES and package not in allowed]
    assert upward == []


def test_the_floor_check_sees_lazy_imports_and_lookups_by_name(tmp_path):
    """What the samples once did (a TensorFlow helper imported from pipeline inside a function) is caught,
    as is a resource named by path or module; relative imports resolve to their own package."""
    module = tmp_path / "lazy.py"
    module.write_text('"""pipeline.resources in a docstring is prose."""\n'
                      "from . import models\n"
                      "def tf():\n    from pipeline.tensorflow_env import import_tensorflow\n\n"
                      'TEMPLATE = "pipeline/resources/architectures.yaml"\n')
    assert [package for _, package in _references(module, ("samples",))] == ["samples", "pipeline", "pipeline"]
