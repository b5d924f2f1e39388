"""Which code made a run: the git commit of a checkout, else the installed package's version."""

import importlib.metadata
import subprocess
from pathlib import Path

PACKAGE = "lenet-luigi-pipeline"


def code_tags() -> dict[str, str]:
    """Return MLflow tags naming the code: ``mlflow.source.git.commit`` where it is a git checkout."""
    try:
        version = importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    tags = {"lenet.code_version": f"{PACKAGE} {version}", "mlflow.source.name": PACKAGE}
    checkout = Path(__file__).resolve().parents[2]
    try:
        top, commit = _git(checkout, "rev-parse", "--show-toplevel", "HEAD").splitlines()
        changed = _git(checkout, "status", "--porcelain", "--untracked-files=no")
    except (OSError, ValueError, subprocess.SubprocessError):
        return tags  # an installed package or an image: no checkout to name
    if Path(top).resolve() != checkout:
        return tags  # installed into a virtual environment that lies inside some other checkout
    tags["mlflow.source.git.commit"] = commit
    tags["lenet.code_version"] = commit + (" (with uncommitted changes)" if changed else "")
    return tags


def _git(directory: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True,
                          timeout=10, check=True).stdout.strip()
