"""Exclusive lock files that work on local disks and NFS and leave no file behind once released.

One helper for every lock of the pipeline: an artifact being made, a scheduled job, a cache
entry being filled. ``flock`` on a descriptor opened for writing: Linux NFS clients emulate
``flock`` with POSIX byte-range locks, which need a writable descriptor for an exclusive lock (a
read-only one fails with EBADF there), and map them to the server's lock manager, so hosts take
turns. Mounts with ``nolock`` or ``local_lock=flock|all`` keep locks on one client and break that.

The holder writes "<host> pid <pid> since <time>" into the file and removes it before it lets
go; a waiter that then gets the lock of a removed file opens the path again. A lock dies with
its process, so a killed holder leaves a file nobody holds: the next taker (or ``lock_holder``)
removes it.
"""

import contextlib
import errno
import fcntl
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable


class LockHeld(Exception):
    """The lock is held by another process; ``holder`` says which ("host pid since")."""

    def __init__(self, path: Path, holder: str):
        super().__init__(f"{path} is held by {holder}")
        self.path, self.holder = path, holder


def _holder_text(descriptor: int) -> str:
    return os.pread(descriptor, 512, 0).decode(errors="replace").strip() or "another process"


def _is_still_at(descriptor: int, path: Path) -> bool:
    """Return True when the open file is still the one at ``path`` (not removed or replaced)."""
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(descriptor)
    return (current.st_ino, current.st_dev) == (opened.st_ino, opened.st_dev)


def _try_flock(descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


@contextlib.contextmanager
def exclusive_lock(path: Path, on_wait: Callable[[str], None] | None = None, wait: bool = True):
    """Hold an exclusive lock on the file ``path`` for the block (created, and removed at the end).

    When another process holds it: with ``wait``, ``on_wait`` gets the holder's line and this
    blocks until the lock is free; without, ``LockHeld`` is raised at once.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_flock(descriptor):
            holder = _holder_text(descriptor)
            if not wait:
                os.close(descriptor)
                raise LockHeld(path, holder)
            if on_wait:
                on_wait(holder)
                on_wait = None
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        if _is_still_at(descriptor, path):
            break
        os.close(descriptor)
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{socket.gethostname()} pid {os.getpid()} since "
                              f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


def lock_holder(path: Path) -> str | None:
    """Return who holds the lock at ``path`` right now, or None; a file nobody holds is removed."""
    try:
        descriptor = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        if not _try_flock(descriptor):
            return _holder_text(descriptor)
        if _is_still_at(descriptor, path):
            os.unlink(path)  # left by a killed holder: nobody can be using it while we hold it
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return None
    finally:
        os.close(descriptor)
