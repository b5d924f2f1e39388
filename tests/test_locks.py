"""The one lock helper: exclusion, waiting with a time limit, probing without taking, and files only gc removes."""

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from pipeline.errors import PipelineError
from pipeline.locks import LockHeld, LockTimeout, exclusive_lock, lock_holder, remove_if_idle


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


def test_without_waiting_a_held_lock_raises_with_its_holder(tmp_path):
    path = tmp_path / ".job.lock"
    with exclusive_lock(path):
        failures = []
        thread = threading.Thread(target=lambda: failures.append(pytest.raises(LockHeld, exclusive_lock(path, wait=False).__enter__)))
        thread.start()
        thread.join(5)
        assert f"pid {os.getpid()}" in failures[0].value.holder


def test_waiting_gives_up_after_its_time_limit_naming_the_lock_and_holder(tmp_path):
    path = tmp_path / ".abc.lock"
    with exclusive_lock(path):
        errors = []

        def waiter():
            try:
                with exclusive_lock(path, timeout_s=0.3):
                    pass
            except LockTimeout as error:
                errors.append(error)

        started = time.monotonic()
        thread = threading.Thread(target=waiter)
        thread.start()
        thread.join(5)
        assert 0.3 <= time.monotonic() - started < 3
    (error,) = errors
    assert isinstance(error, PipelineError)
    assert str(path) in str(error) and f"pid {os.getpid()}" in str(error) and "Waited 0.3 s" in str(error)


def test_releasing_keeps_the_file_so_no_waiter_can_lock_a_removed_one(tmp_path):
    path = tmp_path / ".abc.lock"
    with exclusive_lock(path):
        inode = os.stat(path).st_ino
    assert path.exists() and os.stat(path).st_ino == inode, "release removed or replaced the lock file"


def test_probing_never_takes_the_lock_so_the_holder_keeps_it(tmp_path):
    """A probe from the holder's own process (as tests and `remove` do) must not drop the holder's lock."""
    path = tmp_path / ".abc.lock"
    assert lock_holder(path) is None and not path.exists(), "probing must not create a lock file"
    with exclusive_lock(path):
        seen = []
        thread = threading.Thread(target=lambda: seen.append(lock_holder(path)))
        thread.start()
        thread.join(5)
        assert f"pid {os.getpid()}" in seen[0]
        assert f"pid {os.getpid()}" in lock_holder(path), "the probe released the holder's lock"
        other = subprocess.run([sys.executable, "-c", "import sys; from pipeline.locks import lock_holder; "
                                "print(lock_holder(sys.argv[1]))", str(path)],
                               capture_output=True, text=True, cwd=os.getcwd())
        assert f"pid {os.getpid()}" in other.stdout, other.stderr
    assert lock_holder(path) is None


def test_a_killed_holder_frees_the_lock_and_its_stale_line_is_not_a_holder(tmp_path):
    path = tmp_path / ".abc.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pipeline.locks import exclusive_lock\n"
                               "with exclusive_lock(sys.argv[1]):\n print('held', flush=True); time.sleep(60)",
                               str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert f"pid {holder.pid}" in lock_holder(path)
    holder.kill()
    holder.wait(10)
    assert lock_holder(path) is None
    with exclusive_lock(path, wait=False):
        pass


def test_gc_removes_only_an_idle_lock_file_nobody_holds(tmp_path):
    path = tmp_path / ".abc.lock"
    with exclusive_lock(path):
        assert not remove_if_idle(path, idle_before=time.time() + 3600), "removed a held lock"
    assert not remove_if_idle(path, idle_before=time.time() - 3600), "removed a lock taken moments ago"
    assert path.exists()
    assert remove_if_idle(path, idle_before=time.time() + 1)
    assert not path.exists()


def test_a_taker_that_opened_a_file_gc_then_removed_locks_a_new_file(tmp_path, monkeypatch):
    """Forces the interleaving: the taker opens the old file, gc removes it, the taker locks the removed inode."""
    from pipeline import locks

    path = tmp_path / ".abc.lock"
    path.write_text("")
    real_try = locks._try_lock
    removed = []

    def try_lock_after_gc(descriptor):
        if not removed:
            removed.append(None)
            monkeypatch.setattr(locks, "_try_lock", real_try)  # gc's own try is the real one
            removed[0] = remove_if_idle(path, idle_before=time.time() + 1)
        return real_try(descriptor)

    monkeypatch.setattr(locks, "_try_lock", try_lock_after_gc)
    with exclusive_lock(path):
        assert removed == [True]
        assert path.exists() and f"pid {os.getpid()}" in lock_holder(path), "the taker held a removed file"


def test_a_run_waiting_longer_than_lock_timeout_fails_with_one_line_naming_the_lock(pattern_dir, run_cli, tmp_path):
    import shutil

    from conftest import custom_run, output_of

    outputs = tmp_path / "out"
    first = run_cli("Download", *custom_run(pattern_dir, outputs)[1:])
    assert first.returncode == 0, output_of(first)
    (artifact,) = [path for path in (outputs / "download").iterdir() if not path.name.startswith(".")]
    shutil.rmtree(artifact)
    lock = outputs / "download" / f".{artifact.name}.lock"
    with exclusive_lock(lock):  # another run is making it
        started = time.monotonic()
        waited = run_cli("Download", *custom_run(pattern_dir, outputs)[1:], "--paths-lock-timeout", "1")
    assert waited.returncode == 30, output_of(waited)
    errors = [line for line in waited.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and f"Waited 1 s for the lock {lock}, held by " in errors[0], output_of(waited)
    assert time.monotonic() - started < 60 and not artifact.exists()
