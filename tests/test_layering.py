"""The library is a library: nothing under pipeline/ imports Luigi or the tasks, not even inside a function."""

import ast
import re

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


def test_luigis_private_names_are_reached_in_one_tested_place():
    """Public Luigi API everywhere but tasks/settings.py, whose one reach is tested in tests/test_settings.py."""
    private = re.compile(r"\._Task__|\._config_paths|luigi\.[a-z_.]*\._[a-z]")
    offenders = {str(path.relative_to(REPO_ROOT)): private.findall(path.read_text())
                 for path in sorted((REPO_ROOT / "tasks").rglob("*.py")) if path.name != "settings.py"}
    assert {path: found for path, found in offenders.items() if found} == {}


def test_the_scheduler_port_is_written_once():
    """Luigi's port lives in tasks/project.cfg ([core] scheduler_port); code and scripts read it from there."""
    places = [str(path.relative_to(REPO_ROOT)) for folder in ("pipeline", "tasks", "scripts")
              for path in sorted((REPO_ROOT / folder).rglob("*")) if path.is_file() and path.suffix != ".pyc"
              and "8082" in path.read_text(errors="replace").replace("http://127.0.0.1:8082", "")
              .replace("127.0.0.1:8082 (Luigi's default port)", "")]
    assert places == ["tasks/project.cfg"]
