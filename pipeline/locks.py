"""Exclusive lock files that work on local disks and NFS: never deleted while a run may hold them.

One helper for every lock of the pipeline: an artifact being made, a scheduled job, a cache
entry being filled. Linux open-file-description locks (``F_OFD_SETLK``): a write lock on the
whole file, owned by the open file, so two threads or two processes exclude each other, and
closing some other descriptor of the same file never drops it (as it would a classic POSIX lock).
On NFS the client hands them to the server's lock manager as byte-range locks, so hosts take
turns; they need a descriptor opened for writing, which is how the file is opened. Mounts with
``nolock`` or ``local_lock=posix|all`` keep locks on one client and break that.

Releasing a lock never removes its file: on NFS a waiter's ``stat`` may be answered from the
client's attribute cache, so "remove, then check the inode" cannot tell two holders apart. The
files are tiny and reused by the next run of the same artifact; ``lenet-pipeline gc`` removes
those nobody holds that have been idle for its grace period. Finding out who holds a lock
(``lock_holder``) asks with ``F_OFD_GETLK`` and reads the holder's line: it never takes the lock.

Why not py-filelock: its ``UnixFileLock`` is ``flock``, which NFS clients emulate with POSIX locks
that any close by the holder's process releases, and it can tell neither whether a lock is held
without taking it nor who holds it.
"""

import contextlib
import errno
import fcntl
import os
import socket
import struct
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from pipeline.errors import PipelineError

# struct flock on Linux: l_type, l_whence (short), l_start, l_len (off_t), l_pid (pid_t), padded.
_FLOCK = struct.Struct("hhqqi4x")
_POLL_FIRST_S, _POLL_MAX_S = 0.02, 0.5


class LockHeld(Exception):
    """The lock is held by another process; ``holder`` says which ("host pid since")."""

    def __init__(self, path: Path, holder: str):
        super().__init__(f"{path} is held by {holder}")
        self.path, self.holder = path, holder


class LockTimeout(PipelineError):
    """Waiting for a lock took longer than allowed."""


def _request(kind: int) -> bytes:
    return _FLOCK.pack(kind, os.SEEK_SET, 0, 0, 0)


def _try_lock(descriptor: int) -> bool:
    """Take the write lock on the whole file if nobody holds it; return whether it was taken."""
    try:
        fcntl.fcntl(descriptor, fcntl.F_OFD_SETLK, _request(fcntl.F_WRLCK))
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _is_locked(descriptor: int) -> bool:
    """Return True when some other open file holds a lock on the file (asked, never taken)."""
    answer = fcntl.fcntl(descriptor, fcntl.F_OFD_GETLK, _request(fcntl.F_WRLCK))
    return _FLOCK.unpack(answer)[0] != fcntl.F_UNLCK


def _holder_text(descriptor: int) -> str:
    return os.pread(descriptor, 512, 0).decode(errors="replace").strip() or "another process"


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _wait_for(descriptor: int, path: Path, timeout_s: float | None) -> None:
    """Poll until the lock is taken, or raise LockTimeout after ``timeout_s`` seconds."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    pause = _POLL_FIRST_S
    while not _try_lock(descriptor):
        if deadline is not None and time.monotonic() >= deadline:
            raise LockTimeout(
                f"Waited {timeout_s:g} s for the lock {path}, held by {_holder_text(descriptor)}: wait for that run "
                "to finish or stop it, then run again (a lock dies with its process, so a killed one frees it).")
        time.sleep(pause if deadline is None else min(pause, max(deadline - time.monotonic(), 0.0)))
        pause = min(pause * 2, _POLL_MAX_S)


@contextlib.contextmanager
def exclusive_lock(path: Path, on_wait: Callable[[str], None] | None = None, wait: bool = True,
                   timeout_s: float | None = None):
    """Hold an exclusive lock on the file ``path`` for the block (the file is created if needed, and kept).

    When another process holds it: with ``wait``, ``on_wait`` gets the holder's line and this
    waits until the lock is free (at most ``timeout_s`` seconds, then LockTimeout); without,
    ``LockHeld`` is raised at once.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        descriptor = _open(path)
        try:
            if not _try_lock(descriptor):
                if not wait:
                    raise LockHeld(path, _holder_text(descriptor))
                if on_wait:
                    on_wait(_holder_text(descriptor))
                    on_wait = None
                _wait_for(descriptor, path, timeout_s)
        except BaseException:
            os.close(descriptor)
            raise
        # gc removes a lock file only while holding its lock; one removed meanwhile is taken afresh.
        if os.fstat(descriptor).st_nlink > 0:
            break
        os.close(descriptor)
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{socket.gethostname()} pid {os.getpid()} since "
                              f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # closing the open file description releases its lock


def lock_holder(path: Path) -> str | None:
    """Return who holds the lock at ``path`` right now, or None. Asks without taking the lock."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        return _holder_text(descriptor) if _is_locked(descriptor) else None
    finally:
        os.close(descriptor)


def remove_if_idle(path: Path, idle_before: float) -> bool:
    """Remove the lock file when nobody holds it and it was last taken before ``idle_before`` (epoch s).

    Removed while holding its lock, so a run that opened it meanwhile notices and takes a new one.
    Returns whether the file was removed.
    """
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        if not _try_lock(descriptor) or os.fstat(descriptor).st_mtime >= idle_before:
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return True
    finally:
        os.close(descriptor)
