"""Imports run downward only: each module of the product imports its own package and the
layers below it (CONTRIBUTING.md draws them), never a layer above, a sibling of its own
layer, the evaluation (except the CLI), the testing harnesses, the benchmarks, the tools or
the tests. Every import counts, those inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Lowest first (CONTRIBUTING.md numbers them); a module belongs to the longest prefix that
# names it ("edgelens" itself is the package's __init__ only).
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "edgelens",
        "edgelens.errors",
        "edgelens.child_processes",
        "edgelens.lifecycle",
        "edgelens.wire.names",
    ),
    ("edgelens.settings",),
    ("edgelens.wire", "edgelens.featurizer"),
    ("edgelens.samples", "edgelens.broker"),
    ("edgelens.catalog", "edgelens.models", "edgelens.bundle"),
    ("edgelens.search",),
    ("edgelens.cloud", "edgelens.device", "edgelens.webapp"),
    ("edgelens.demo",),
    ("edgelens.evaluation",),
    ("edgelens.cli",),
    ("edgelens.__main__",),
)
# Outside the product: they may import it, and the product never imports them.
OUTSIDE = ("edgelens.testing", "benchmarks", "tools", "tests", "scripts")


def _home(module: str) -> tuple[int, str] | None:
    """(layer, the prefix that places it) of a product module; None outside the product."""
    if module.split(".")[0] != "edgelens" or _outside(module):
        return None
    found = max(
        (
            (len(prefix), layer, prefix)
            for layer, prefixes in enumerate(LAYERS)
            for prefix in prefixes
            if module == prefix or (prefix != "edgelens" and module.startswith(prefix + "."))
        ),
        default=None,
    )
    assert found is not None, f"{module} has no layer: add it to LAYERS and CONTRIBUTING.md"
    return found[1], found[2]


def _outside(module: str) -> bool:
    return any(module == o or module.startswith(o + ".") for o in OUTSIDE)


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the source, at any depth."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # "from edgelens import errors" imports the module edgelens.errors
            named = {f"{node.module}.{alias.name}" for alias in node.names}
            modules = sorted(m for m in named if _is_module(m)) or [node.module]
            found += [(node.lineno, module) for module in modules]
    return found


def _is_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _sources(folder: Path) -> list[tuple[str, str]]:
    return [(_module_name(p), p.read_text()) for p in sorted(folder.rglob("*.py"))]


def violations(modules: list[tuple[str, str]]) -> list[str]:
    """Every import of the (module name, source) pairs that runs upward, sideways or out of
    the product, one line each."""
    wrong = []
    for importer, source in modules:
        home = _home(importer)
        if home is None:
            continue
        layer, prefix = home
        for line, imported in _imports(source):
            where = f"{importer}:{line} imports {imported}"
            if _outside(imported):
                wrong.append(f"{where}: outside the product")
                continue
            target = _home(imported) if imported.split(".")[0] == "edgelens" else None
            if target is None or target[1] == prefix or importer.startswith(target[1] + "."):
                continue
            if target[0] > layer:
                wrong.append(f"{where}: a higher layer")
            elif target[0] == layer and not imported.startswith(prefix):
                wrong.append(f"{where}: a sibling of its own layer")
    return wrong


def test_the_product_imports_only_downward():
    assert violations(_sources(REPO / "edgelens")) == []


def test_tools_and_benchmarks_never_import_the_tests():
    modules = [
        *_sources(REPO / "benchmarks"),
        *_sources(REPO / "tools"),
        *_sources(REPO / "edgelens" / "testing"),
    ]
    wrong = [
        f"{module}:{line} imports {imported}"
        for module, source in modules
        for line, imported in _imports(source)
        if imported == "tests" or imported.startswith("tests.")
    ]
    assert wrong == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from edgelens.cli.main import app\n", "a higher layer"),
        ("def f():\n    from edgelens.evaluation import runner\n", "a higher layer"),
        ("from edgelens.device.loop import DeviceLoop\n", "a sibling of its own layer"),
        ("from edgelens.testing.browser import headless_chromium\n", "outside the product"),
        ("import benchmarks.common\n", "outside the product"),
        ("from edgelens.search.base import VectorIndex\n", None),
        ("from edgelens.cloud.answer import Answerer\n", None),
    ],
)
def test_the_check_itself_tells_upward_and_sideways_imports(source, expected):
    """A module of edgelens.cloud with one import: the check says what is wrong with it."""
    found = violations([("edgelens.cloud.probe", source)])
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].endswith(expected)
