"""What the product package imports: the benchmark and the synthetic generator only where the CLI
asks for them, and never the Definitions from a module the Definitions are built from."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import phone_pipeline

PACKAGE = Path(phone_pipeline.__file__).parent


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module imported, at module level?) for every import statement of the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module, id(node) in top_level))
            found += [
                (f"{node.module}.{alias.name}", id(node) in top_level) for alias in node.names
            ]
    return found


def _modules() -> dict[str, list[tuple[str, bool]]]:
    return {
        path.relative_to(PACKAGE).as_posix(): _imports(path)
        for path in sorted(PACKAGE.rglob("*.py"))
    }


@pytest.mark.parametrize("package", ["phone_pipeline_bench", "phone_pipeline_synthetic"])
def test_only_the_cli_imports_the_benchmark_and_the_generator_and_only_when_asked(
    package: str,
) -> None:
    users = {
        module: [at_top for name, at_top in imports if name.split(".")[0] == package]
        for module, imports in _modules().items()
    }
    users = {module: tops for module, tops in users.items() if tops}
    assert set(users) == {"cli.py"}
    assert not any(users["cli.py"])  # inside the command's code: imported lazily


def test_no_stage_or_check_imports_the_definitions() -> None:
    # definitions.py imports every asset module: importing it back from one is a cycle (the
    # record of processing takes the asset graph from its run instead).
    offenders = [
        module
        for module, imports in _modules().items()
        if module.startswith(("assets/", "checks/", "domain/"))
        and any(name.startswith("phone_pipeline.definitions") for name, _ in imports)
    ]
    assert offenders == []
