"""Artifact directories: ids that hash their inputs, locked atomic creation, and ``meta.json``.

An artifact directory is complete when its ``meta.json`` is there: the staging directory gets it
last and is then renamed into place, so a directory without one was made or changed by hand.
``meta.json`` lists every other file with its size and sha256, for ``verify_artifact``.
"""

import contextlib
import errno
import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import socket
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from typing import Callable

from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

ID_LENGTH = 12
META_FILE = "meta.json"
PACKAGES = ("numpy", "luigi", "tensorflow", "keras")
HASH_CHUNK_BYTES = 1 << 20


def artifact_id(step: str, params: dict, upstream: dict[str, str]) -> str:
    """Return a short stable hash of a step's name, significant params and upstream artifact ids."""
    identity = json.dumps({"step": step, "params": params, "upstream": upstream}, sort_keys=True)
    return hashlib.sha256(identity.encode()).hexdigest()[:ID_LENGTH]


def package_versions() -> dict[str, str]:
    """Return the installed versions of the packages that shape results, without importing them."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_json(path: Path, data) -> None:
    """Write ``data`` as indented JSON to ``path``."""
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path):
    """Return the JSON held in ``path``."""
    return json.loads(Path(path).read_text())


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def file_checksums(directory: Path) -> dict[str, dict]:
    """Return {relative path: {"bytes", "sha256"}} for every file below ``directory`` but meta.json."""
    directory = Path(directory)
    checksums = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if path.is_file() and relative != META_FILE:
            checksums[relative] = {"bytes": path.stat().st_size, "sha256": sha256_of(path)}
    return checksums


def is_complete(directory: Path) -> bool:
    """Return True when ``directory`` is a finished artifact (its meta.json is in place)."""
    return os.path.isfile(os.path.join(directory, META_FILE))


def verify_artifact(directory: Path) -> list[str]:
    """Return one line per problem of an artifact directory: missing, altered or unlisted files."""
    directory = Path(directory)
    if not is_complete(directory):
        return [f"{directory}: no {META_FILE}, so not a finished artifact (remove it; a run remakes it)"]
    recorded = read_json(directory / META_FILE).get("checksums")
    if recorded is None:
        return [f"{directory}: {META_FILE} records no checksums (written by an older version; "
                "remove it and run again)"]
    problems = []
    present = {path.relative_to(directory).as_posix(): path for path in directory.rglob("*") if path.is_file()}
    for relative, expected in sorted(recorded.items()):
        path = present.get(relative)
        if path is None:
            problems.append(f"{directory / relative}: missing")
        elif path.stat().st_size != expected["bytes"] or sha256_of(path) != expected["sha256"]:
            problems.append(f"{directory / relative}: altered (sha256 {sha256_of(path)}, "
                            f"recorded {expected['sha256']})")
    for relative in sorted(set(present) - set(recorded) - {META_FILE}):
        problems.append(f"{directory / relative}: not recorded in {META_FILE} (added after the run)")
    return problems


def _pid_alive(pid: int) -> bool:
    """Return True when a process ``pid`` is running on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(final: Path) -> None:
    """Delete temporary siblings of ``final`` left by processes that died on this host."""
    prefix = f".{final.name}.tmp-{socket.gethostname()}-"
    if not final.parent.is_dir():
        return
    for candidate in final.parent.glob(f".{final.name}.tmp-*"):
        if not candidate.name.startswith(prefix):
            continue
        pid = candidate.name[len(prefix):].split("-")[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(candidate, ignore_errors=True)


def _lock_holder(handle) -> str:
    """Return what the holder of a lock file wrote about itself."""
    handle.seek(0)
    return handle.read().strip() or "another process"


def _same_file(handle, path: Path) -> bool:
    """Return True when the open ``handle`` is still the file at ``path`` (not removed or replaced)."""
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(handle.fileno())
    return (current.st_ino, current.st_dev) == (opened.st_ino, opened.st_dev)


@contextlib.contextmanager
def artifact_lock(final: Path, on_wait: Callable[[str], None] | None = None):
    """Hold an exclusive lock on ``final``'s lock file (``.<name>.lock`` beside it) for the block.

    ``flock`` on the outputs file system, so runs on one host and, on a shared file system whose
    client maps flock to its own locks (Linux NFS does), runs on several hosts take turns. When
    another process holds it, ``on_wait`` gets that holder's "host pid since" line, then this
    blocks until the lock is free. The lock dies with its process: a killed run frees it. The
    holder removes the file before it lets go, so a waiter that then gets the lock of a removed
    file opens the path again.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    path = final.parent / f".{final.name}.lock"
    while True:
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait(_lock_holder(handle))
                on_wait = None
            fcntl.flock(handle, fcntl.LOCK_EX)
        if _same_file(handle, path):
            break
        handle.close()
    with handle:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{socket.gethostname()} pid {os.getpid()} since "
                     f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}\n")
        handle.flush()
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


def lock_holder(final: Path) -> str | None:
    """Return who holds ``final``'s lock ("host pid since") right now, or None when nobody does."""
    lock_path = Path(final).parent / f".{Path(final).name}.lock"
    if not lock_path.is_file():
        return None
    with open(lock_path, "r") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _lock_holder(handle)
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def discard_unfinished(final: Path) -> bool:
    """Remove ``final`` if it exists without being complete (moved aside first); return whether it did."""
    final = Path(final)
    if not final.exists() or is_complete(final):
        return False
    aside = final.parent / f".{final.name}.unfinished-{uuid.uuid4().hex[:6]}"
    os.rename(final, aside)
    shutil.rmtree(aside, ignore_errors=True)
    log.warning("Removed %s: it had no %s, so it was not a finished artifact", final, META_FILE)
    return True


def _commit(temporary: Path, final: Path, finished: Callable[[Path], bool]) -> None:
    """Rename ``temporary`` to ``final``; if a finished ``final`` is already there, drop ``temporary``."""
    try:
        os.rename(temporary, final)
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not finished(final):
            raise
        shutil.rmtree(temporary, ignore_errors=True)
        log.info("%s is already in place (made by another run); discarded this run's copy", final)


@contextlib.contextmanager
def atomic_directory(final: Path, finished: Callable[[Path], bool] = os.path.isdir):
    """Yield a temporary directory that becomes ``final`` only if the block completes.

    On any failure the temporary directory is removed, so nothing half-written can be taken
    for finished work. When another process put a ``finished`` copy of ``final`` in place
    meanwhile, that copy stays and this one is discarded. A full disk is reported with the path
    and what to do.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    temporary = final.parent / f".{final.name}.tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    temporary.mkdir()
    try:
        yield temporary
        _commit(temporary, final, finished)
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        if error.errno == errno.ENOSPC:
            raise PipelineError(
                f"No space left on the device while writing {final}: free some space or set "
                "[paths] outputs (--paths-outputs) to a larger disk, then run again."
            ) from error
        raise
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


class RunClock:
    """Records when a step started and ended, for ``meta.json``."""

    def __init__(self):
        self.started = datetime.now(timezone.utc)
        self._start = time.monotonic()

    def as_dict(self) -> dict:
        """Return the start, end and duration of the step so far."""
        return {
            "started": self.started.isoformat(timespec="seconds"),
            "ended": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "duration_s": round(time.monotonic() - self._start, 3),
        }


def write_meta(directory: Path, step: str, identity: str, params: dict, upstream: dict,
               clock: RunClock, extra: dict | None = None) -> None:
    """Write ``meta.json``: what made this artifact, with which versions, when and how long.

    Written last: it lists every other file of ``directory`` with its size and sha256.
    """
    meta = {
        "step": step,
        "artifact_id": identity,
        "params": params,
        "upstream": upstream,
        "versions": package_versions(),
        "host": socket.gethostname(),
        "command": sys.argv,
        **clock.as_dict(),
        **(extra or {}),
        "checksums": file_checksums(directory),
    }
    write_json(Path(directory) / META_FILE, meta)
