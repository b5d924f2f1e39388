"""The library is a library: nothing under pipeline/ imports Luigi or the tasks, not even inside a function."""

import ast

from conftest import REPO_ROOT


def imported_modules(path) -> set[str]:
    """Return every module an ``import`` or ``from ... import`` anywhere in the file names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_nothing_under_pipeline_imports_luigi_or_tasks():
    offenders = {str(path.relative_to(REPO_ROOT)): sorted(name for name in imported_modules(path)
                                                          if name.split(".")[0] in ("luigi", "tasks"))
                 for path in sorted((REPO_ROOT / "pipeline").rglob("*.py"))}
    assert {path: names for path, names in offenders.items() if names} == {}
