"""Artifacts in a local (or NFS-mounted) directory: ``<root>/<step>/<id>/``, renamed into place whole.

Every writer of an artifact holds its lock (a file beside it) for the whole run, so a run that
takes the lock may clear any staging leftovers of that artifact, whichever host left them.
``garbage``/``collect`` (``lenet-pipeline gc``) remove what a killed run left and nobody will
clear otherwise: staging and set-aside directories, the checkpoints of finished trainings, idle
lock files; each artifact's only while its lock is free, aged by the file system's own clock.
"""

import contextlib
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable

from pipeline import locks
from pipeline.artifacts import (atomic_directory, directory_problem, discard_directory, read_meta, remove_leftovers,
                                tree_bytes, verify_artifact, write_json)
from pipeline.storage import ABSENT, FINISHED, WORK_SUFFIX, ArtifactLocks, ArtifactStatus, Garbage

LEFTOVER_MARKS = (".tmp-", ".unfinished-")

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

    def pull_work(self, step: str, identity: str, newest: Callable[[list[str]], int]) -> bool:
        """Nothing to fetch: the work directory is already in the store."""
        return False

    def push_work(self, step: str, identity: str, newest: Callable[[list[str]], int]) -> None:
        """Nothing to send: the work directory is already in the store."""

    def drop_work(self, step: str, identity: str) -> None:
        """Remove the work directory."""
        shutil.rmtree(self.work_dir(step, identity), ignore_errors=True)

    def store_time(self) -> float:
        """Return the file system's own clock (a new file's mtime: on NFS, the server's), in epoch seconds."""
        self.root.mkdir(parents=True, exist_ok=True)
        probe = self.root / f".clock-{uuid.uuid4().hex[:8]}"
        probe.touch()
        try:
            return probe.stat().st_mtime
        finally:
            probe.unlink()

    def garbage(self, steps: list[str], older_than_s: float) -> list[Garbage]:
        """Return what no run will clear and nobody needs, untouched for over ``older_than_s`` seconds.

        Staging and set-aside directories (``.<id>.tmp-*``, ``.<id>.unfinished-*``) and a finished
        training's work directory, while the artifact's lock is free; lock files nobody holds.
        An unfinished training's checkpoints stay: a rerun resumes from them.
        """
        if not self.root.is_dir():
            return []
        cutoff = self.store_time() - older_than_s
        found = []
        for step in steps:
            folder = self.root / step
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                item = self._garbage_item(step, path, cutoff)
                if item:
                    found.append(item)
        return found

    def _garbage_item(self, step: str, path: Path, cutoff: float) -> Garbage | None:
        name = path.name
        if name.startswith(".") and name.endswith(".lock"):
            stat = path.stat()
            idle = stat.st_mtime <= cutoff and locks.lock_holder(path) is None
            return Garbage(str(path), stat.st_size, "a lock file nobody holds") if idle else None
        identity = _artifact_of(name)
        if identity is None or self.holder(step, identity) is not None or _newest_mtime(path) > cutoff:
            return None
        if name.startswith("."):
            return Garbage(str(path), tree_bytes(path), "a killed run's staging or set-aside directory")
        if name.endswith(WORK_SUFFIX) and self.status(step, identity).finished:
            return Garbage(str(path), tree_bytes(path), "the checkpoints of a finished training")
        return None

    def collect(self, items: list[Garbage]) -> list[Garbage]:
        """Remove what ``garbage`` found; each artifact's only while holding its lock, a lock file only if idle.

        Returns what was removed (a run that started meanwhile keeps its artifact's items).
        """
        removed = []
        # Lock files last: removing a directory takes its artifact's lock, which recreates the file.
        for item in sorted(items, key=lambda item: item.location.endswith(".lock")):
            path = Path(item.location)
            if path.name.endswith(".lock"):
                if locks.remove_if_idle(path, idle_before=float("inf")):
                    removed.append(item)
                continue
            with contextlib.suppress(locks.LockHeld):
                with self.lock(path.parent.name, _artifact_of(path.name), wait=False):
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(item)
        return removed

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


def _artifact_of(name: str) -> str | None:
    """Return the artifact id a step folder's entry belongs to (``<id>``, ``<id>.incomplete``, ``.<id>.tmp-*``)."""
    if name.startswith("."):
        for mark in LEFTOVER_MARKS:
            if mark in name:
                return name[1:name.index(mark)]
        return None
    return name.removesuffix(WORK_SUFFIX)


def _newest_mtime(path: Path) -> float:
    """Return the newest mtime of ``path`` and everything below it (a run still writing keeps it young)."""
    newest = path.lstat().st_mtime
    for root, directories, files in os.walk(path):
        for name in [*directories, *files]:
            with contextlib.suppress(FileNotFoundError):
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
    return newest
