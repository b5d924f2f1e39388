"""The one lock helper: exclusion, waiting, no lock file left behind, and NFS's writable-descriptor rule."""

import errno
import fcntl
import os
import socket
import threading
import time

import pytest

from pipeline import locks
from pipeline.locks import LockHeld, exclusive_lock, lock_holder


def test_a_second_holder_waits_and_learns_who_holds_it(tmp_path):
    path = tmp_path / "train" / ".abc.lock"
    order, waited_for = [], []
    with exclusive_lock(path):
        def second():
            with exclusive_lock(path, on_wait=waited_for.append):
                order.append("second")

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        order.append("first done")
    thread.join(5)
    assert order == ["first done", "second"]
    (holder,) = waited_for
    assert f"pid {os.getpid()} since" in holder and socket.gethostname() in holder
    assert list((tmp_path / "train").iterdir()) == [], "the lock file was left behind"


def test_many_holders_take_turns_one_at_a_time(tmp_path):
    path = tmp_path / ".abc.lock"
    inside, overlaps = [], []

    def worker():
        for _ in range(20):
            with exclusive_lock(path):
                inside.append(1)
                overlaps.append(len(inside))
                time.sleep(0.001)
                inside.pop()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(overlaps) == 80 and max(overlaps) == 1, "two holders were inside at once"
    assert not path.exists()


def test_without_waiting_a_held_lock_raises_with_its_holder(tmp_path):
    path = tmp_path / ".job.lock"
    with exclusive_lock(path):
        failures = []
        thread = threading.Thread(target=lambda: failures.append(pytest.raises(LockHeld, exclusive_lock(path, wait=False).__enter__)))
        thread.start()
        thread.join(5)
        assert f"pid {os.getpid()}" in failures[0].value.holder
    assert not path.exists()


def holder_seen_while_held(path) -> str | None:
    """Return what ``lock_holder`` says from another thread while this one holds the lock."""
    with exclusive_lock(path):
        seen = []
        thread = threading.Thread(target=lambda: seen.append(lock_holder(path)))
        thread.start()
        thread.join(5)
    return seen[0]


def test_lock_holder_names_a_running_holder_and_removes_a_dead_ones_file(tmp_path):
    path = tmp_path / ".abc.lock"
    assert lock_holder(path) is None and not path.exists(), "probing must not create a lock file"
    assert f"pid {os.getpid()}" in holder_seen_while_held(path)
    path.write_text("gone-host pid 1 since 2026-01-01T00:00:00+00:00\n")  # a SIGKILLed holder's file
    assert lock_holder(path) is None
    assert not path.exists(), "a lock file nobody holds outlived its use"


def _nfs_flock(real_flock):
    """flock as a Linux NFS client does it: POSIX locks, so an exclusive lock needs a writable descriptor."""
    def flock(descriptor, operation):
        if operation & fcntl.LOCK_EX and (fcntl.fcntl(descriptor, fcntl.F_GETFL) & os.O_ACCMODE) == os.O_RDONLY:
            raise OSError(errno.EBADF, "Bad file descriptor")
        return real_flock(descriptor, operation)
    return flock


def test_locks_and_the_holder_probe_work_where_exclusive_locks_need_a_writable_descriptor(tmp_path, monkeypatch):
    monkeypatch.setattr(locks.fcntl, "flock", _nfs_flock(fcntl.flock))
    path = tmp_path / ".abc.lock"
    assert f"pid {os.getpid()}" in holder_seen_while_held(path)
    assert lock_holder(path) is None
