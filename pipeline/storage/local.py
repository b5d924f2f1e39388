"""Artifacts in a local (or NFS-mounted) directory: ``<root>/<step>/<id>/``, renamed into place whole."""

import contextlib
import logging
import shutil
from pathlib import Path
from typing import Callable

from pipeline.artifacts import (atomic_directory, directory_problem, discard_directory, read_meta, remove_leftovers,
                                verify_artifact, write_json)
from pipeline.storage import ABSENT, FINISHED, WORK_SUFFIX, ArtifactLocks, ArtifactStatus

log = logging.getLogger(__name__)


class LocalStore(ArtifactLocks):
    """An outputs root on a file system; several hosts may share it (NFS with working locks)."""

    def __init__(self, root: Path):
        self.root = Path(root).expanduser().resolve()

    def __repr__(self):
        return f"LocalStore({str(self.root)!r})"

    def uri(self, step: str, identity: str) -> str:
        """Return where the artifact is, for messages and records."""
        return str(self.location(step, identity))

    def location(self, step: str, identity: str) -> Path:
        return self.root / step / identity

    def status(self, step: str, identity: str) -> ArtifactStatus:
        """Return whether the artifact is finished (``meta.json`` names it, every file has its size)."""
        directory = self.location(step, identity)
        if not directory.exists():
            return ABSENT
        problem = directory_problem(directory, identity)
        return FINISHED if problem is None else ArtifactStatus(False, problem)

    def read_meta(self, step: str, identity: str) -> dict | None:
        return read_meta(self.location(step, identity))

    def _lock_path(self, step: str, identity: str) -> Path:
        # Beside the artifact, so that every host sharing the root (NFS) takes the same lock.
        return self.root / step / f".{identity}.lock"

    def discard_unfinished(self, step: str, identity: str) -> None:
        """Remove an unfinished copy of the artifact and any run's staging leftovers (hold the lock)."""
        final = self.location(step, identity)
        remove_leftovers(final)
        if final.exists() and directory_problem(final, identity) is not None:
            discard_directory(final)

    @contextlib.contextmanager
    def staging(self, step: str, identity: str, needed: int | None = None):
        """Yield a local directory that becomes the artifact, atomically, when the block succeeds.

        ``needed``: about how many bytes the step writes, for the message if the disk fills.
        """
        final = self.location(step, identity)
        with atomic_directory(final, lambda path: directory_problem(path, identity) is None, needed) as staging:
            yield staging

    def commit(self, step: str, identity: str, local: Path) -> None:
        """Copy a finished directory made elsewhere (its meta.json listing every file) in as the artifact."""
        with self.staging(step, identity) as staging:
            shutil.copytree(local, staging, dirs_exist_ok=True)

    def fetch(self, step: str, identity: str) -> Path:
        """Return a local directory holding the artifact's files (here: the artifact itself)."""
        return self.location(step, identity)

    def verify(self, step: str, identity: str) -> list[str]:
        """Return one line per missing, altered or unrecorded file of the artifact (re-hashed)."""
        return verify_artifact(self.location(step, identity), identity)

    def ids(self, step: str) -> list[str]:
        """Return the ids of the artifact directories under a step, finished or not, leftovers excluded."""
        folder = self.root / step
        if not folder.is_dir():
            return []
        return sorted(path.name for path in folder.iterdir()
                      if path.is_dir() and not path.name.startswith(".") and not path.name.endswith(WORK_SUFFIX))

    def remove(self, step: str, identity: str) -> list[str]:
        """Delete the artifact and its work directory (hold the lock); return what was removed."""
        removed = []
        for path in (self.location(step, identity), self.work_dir(step, identity)):
            if path.exists():
                discard_directory(path)
                removed.append(str(path))
        remove_leftovers(self.location(step, identity))
        return removed

    def work_dir(self, step: str, identity: str) -> Path:
        """Return the directory where a step keeps state until it finishes (Train's checkpoints)."""
        return self.root / step / f"{identity}{WORK_SUFFIX}"

    def pull_work(self, step: str, identity: str, newest: Callable[[list[str]], object]) -> bool:
        """Nothing to fetch: the work directory is already in the store."""
        return False

    def push_work(self, step: str, identity: str, last: Callable[[str], bool] = lambda name: False) -> None:
        """Nothing to send: the work directory is already in the store."""

    def drop_work(self, step: str, identity: str) -> None:
        """Remove the work directory."""
        shutil.rmtree(self.work_dir(step, identity), ignore_errors=True)

    def log_dir(self) -> Path:
        """Return the local directory for logs and locks of runs on this store (the root itself)."""
        return self.root

    def put_json(self, relative: str, data) -> str:
        """Write a JSON record under the root (e.g. ``runs/<name>.json``); return where it went."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, data)
        return str(path)

    def describe(self) -> str:
        return str(self.root)
