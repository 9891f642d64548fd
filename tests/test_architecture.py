"""The import graph is catalogs <- generator <- calibration <- genie: each package imports only
those to its left."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["catalogs", "generator", "calibration", "genie"]


def imported_packages(package: str) -> set[str]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found & set(ORDER)


@pytest.mark.parametrize("package", ORDER)
def test_packages_import_only_lower_layers(package):
    allowed = set(ORDER[: ORDER.index(package) + 1])
    assert imported_packages(package) <= allowed


def test_checker_sees_imports():
    assert "catalogs" in imported_packages("genie")
