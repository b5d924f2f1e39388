"""Where artifacts live: a local directory or an S3 prefix, behind one small interface.

``open_store(root, cache_dir, s3_client)`` returns a ``LocalStore`` for a path and an ``S3Store``
for ``s3://BUCKET/PREFIX``. Both answer the same questions about an artifact ``(step, id)``:
its ``status`` (finished, absent, or unfinished and why), its ``lock``, a ``staging`` directory
that becomes the artifact only when the block succeeds, ``fetch`` (a local directory to read it
from), ``verify``, ``remove``, the ids under a step, and a work directory (Train's checkpoints)
that the store keeps across hosts. Nothing here knows about Luigi.

The rule both keep: while runs go on, writers only add. Nothing a run does deletes or overwrites
what another process may be writing or reading, except a manifest (``meta.json``, a checkpoint's
manifest), which names files that stay. What no manifest names is garbage, and only the explicit
``garbage``/``collect`` pair (``lenet-pipeline gc``) removes it, aged by the store's own clock.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline import locks

APP_NAME = "lenet-luigi-pipeline"
WORK_SUFFIX = ".incomplete"


@dataclass(frozen=True)
class ArtifactStatus:
    """Whether an artifact is finished; when it is not but something is there, ``problem`` says why."""

    finished: bool
    problem: str | None = None

    @property
    def absent(self) -> bool:
        return not self.finished and self.problem is None


FINISHED = ArtifactStatus(True)
ABSENT = ArtifactStatus(False)
# Garbage younger than this may belong to a run still at work (a commit's uploads, a staging
# directory): `lenet-pipeline gc` leaves it unless told otherwise (--older-than).
DEFAULT_GC_AGE_S = 24 * 3600
# Train keeps this many checkpoints of an unfinished training through gc: the newest may be
# damaged, and resume falls back to the one before it.
KEPT_CHECKPOINTS = 2


@dataclass(frozen=True)
class Garbage:
    """Something no manifest references: where it is (a path or key), its bytes, and why it is garbage."""

    location: str
    size: int
    reason: str


class ArtifactLocks:
    """The lock of each artifact, a file at ``_lock_path(step, id)`` (pipeline.locks)."""

    def _lock_path(self, step: str, identity: str) -> Path:
        raise NotImplementedError

    def lock(self, step: str, identity: str, on_wait: Callable[[str], None] | None = None, wait: bool = True,
             timeout_s: float | None = None):
        """Hold the artifact's lock for a block; with ``wait`` False, raise LockHeld if another has it.

        ``timeout_s``: wait at most that long, then raise LockTimeout naming the holder.
        """
        return locks.exclusive_lock(self._lock_path(step, identity), on_wait, wait, timeout_s)

    def holder(self, step: str, identity: str) -> str | None:
        """Return who is making the artifact right now, or None."""
        return locks.lock_holder(self._lock_path(step, identity))


def default_cache_dir() -> Path:
    """Return the user's cache directory for this project: $XDG_CACHE_HOME or ~/.cache, then the app name."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / APP_NAME


def is_s3(root: str) -> bool:
    """Return True when an outputs root names an S3 prefix."""
    return str(root).startswith("s3://")


def s3_cache_dir(root: str, cache_dir: Path) -> Path:
    """Return this host's cache directory for the S3 root ``s3://BUCKET/PREFIX``."""
    return Path(cache_dir) / "s3" / str(root)[len("s3://"):].strip("/")


def log_dir_for(root: str, cache_dir: str | Path | None = None) -> Path:
    """Return where runs on an outputs root keep pipeline.log: the root itself, or an S3 root's cache."""
    if is_s3(root):
        return s3_cache_dir(root, Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / "logs"
    return Path(root)


def open_store(root: str, cache_dir: str | Path | None = None, s3_client=None):
    """Return the store for an outputs root: a directory path, or ``s3://BUCKET/PREFIX``.

    ``cache_dir`` (default: the user's cache directory) holds what an S3 store fetches and stages;
    ``s3_client`` is a boto3 S3 client, made from the standard AWS settings when not given.
    """
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    if is_s3(root):
        from pipeline.storage.s3 import S3Store, make_client

        return S3Store(str(root), s3_client or make_client(), cache)
    from pipeline.storage.local import LocalStore

    return LocalStore(Path(root))
