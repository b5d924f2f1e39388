"""The locked environments: every dependency pinned within pyproject.toml's range, with hashes, and installed as locked."""

import importlib.metadata
import re
import tomllib

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

from conftest import REPO_ROOT

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)(?:\s*;\s*([^\\]+?))?\s*\\?$")


def pins(name: str) -> dict[str, list[tuple[str, str | None]]]:
    """Return {normalised package: [(version, marker)]} of a lock file, checking every pin has hashes."""
    found, text = {}, (REPO_ROOT / "requirements" / name).read_text()
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = PIN.match(block.splitlines()[0])
        if match:
            assert "--hash=sha256:" in block, f"{match.group(1)} in {name} has no hash"
            found.setdefault(normalise(match.group(1)), []).append((match.group(2), match.group(3)))
    return found


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize("lock, requirements", [
    ("dev.txt", lambda: project()["dependencies"] + project()["optional-dependencies"]["test"]
     + project()["optional-dependencies"]["mlflow"]),
    ("image.txt", lambda: [d.replace("tensorflow>", "tensorflow-cpu>", 1) for d in project()["dependencies"]]),
    ("jupyter.txt", lambda: project()["optional-dependencies"]["jupyter"]),
    ("tracking.txt", lambda: project()["optional-dependencies"]["mlflow"]),
    ("mlflow-server.txt", lambda: [line for line in (REPO_ROOT / "requirements" / "mlflow-server.in").read_text().splitlines()
                                   if line and not line.startswith("#")]),
])
def test_every_dependency_is_pinned_inside_its_range(lock, requirements):
    pinned = pins(lock)
    for requirement in map(Requirement, requirements()):
        versions = pinned.get(normalise(requirement.name))
        assert versions, f"{requirement.name} is not in requirements/{lock}: run make lock"
        for version, _ in versions:
            assert requirement.specifier.contains(version, prereleases=True), \
                f"{requirement.name}=={version} in {lock} is outside {requirement.specifier}: run make lock"


def test_the_environment_running_the_tests_is_the_locked_one():
    mismatched = {}
    for name, versions in pins("dev.txt").items():
        wanted = [version for version, marker in versions if marker is None or Marker(marker).evaluate()]
        if not wanted:
            continue
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != wanted[0]:
            mismatched[name] = (installed, wanted[0])
    assert mismatched == {}, "installed, locked: make test reinstalls from requirements/dev.txt"


def test_python_versions_match_the_lock():
    assert project()["requires-python"] == ">=3.11,<3.14"
    dev = (REPO_ROOT / "requirements" / "dev.txt").read_text()
    assert "python_full_version >= '3.12'" in dev, "the universal lock lost its 3.12+ pins"


def test_the_server_and_the_pipeline_never_share_sqlalchemy():
    """mlflow server needs SQLAlchemy 2, luigid's task history 1.4: two environments, two locks."""
    assert all(version.startswith("1.4") for version, _ in pins("dev.txt")["sqlalchemy"])
    assert all(version.startswith("2.") for version, _ in pins("mlflow-server.txt")["sqlalchemy"])
    assert "mlflow" not in pins("dev.txt"), "the server's package is in the pipeline's environment"
    assert not any(Requirement(dependency).name.startswith("mlflow") for dependency in project()["dependencies"]), \
        "MLflow is an optional extra, not a dependency of the base install"
