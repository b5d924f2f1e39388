"""Artifact ids, atomic directories, the per-artifact lock, and meta.json checksums."""

import errno
import hashlib
import json
import logging
import os
import socket
import threading
import time

import pytest

from pipeline.artifacts import (META_FILE, RunClock, artifact_id, artifact_lock, atomic_directory, lock_holder,
                                discard_unfinished, is_complete, verify_artifact, write_meta)
from pipeline.errors import PipelineError


def test_artifact_id_is_stable_and_depends_on_params_and_upstream():
    base = artifact_id("train", {"epochs": 10}, {"input": "abc"})
    assert base == artifact_id("train", {"epochs": 10}, {"input": "abc"})
    assert base != artifact_id("train", {"epochs": 11}, {"input": "abc"})
    assert base != artifact_id("train", {"epochs": 10}, {"input": "abd"})
    assert len(base) == 12


def test_completed_block_renames_into_place(tmp_path):
    with atomic_directory(tmp_path / "step" / "id") as staging:
        (staging / "a.npy").write_text("x")
    assert (tmp_path / "step" / "id" / "a.npy").read_text() == "x"
    assert [p.name for p in (tmp_path / "step").iterdir()] == ["id"]


def test_failed_block_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "id") as staging:
            (staging / "half").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_full_disk_is_explained(tmp_path):
    with pytest.raises(PipelineError, match=r"No space left .* \(--paths-outputs\)"):
        with atomic_directory(tmp_path / "id"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_dead_processes_are_removed(tmp_path):
    import socket

    stale = tmp_path / f".id.tmp-{socket.gethostname()}-999999999-abcdef"
    stale.mkdir()
    with atomic_directory(tmp_path / "id"):
        pass
    assert not stale.exists()


def test_a_finished_twin_already_in_place_wins_and_the_copy_is_discarded(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pipeline.artifacts")
    final = tmp_path / "step" / "id"
    with atomic_directory(final, finished=is_complete) as staging:
        (staging / "mine").write_text("mine")
        # Another run commits the same artifact while this one is still writing.
        final.mkdir()
        (final / "theirs").write_text("theirs")
        (final / META_FILE).write_text("{}")
    assert sorted(p.name for p in final.iterdir()) == [META_FILE, "theirs"]
    assert [p.name for p in final.parent.iterdir()] == ["id"], "the staging copy was left behind"
    assert "already in place (made by another run)" in caplog.text


def test_an_unfinished_directory_in_the_way_is_not_taken_for_a_twin(tmp_path):
    final = tmp_path / "id"
    with pytest.raises(OSError):
        with atomic_directory(final, finished=is_complete) as staging:
            (staging / "mine").write_text("mine")
            final.mkdir()
            (final / "half").write_text("x")
    assert discard_unfinished(final) and not final.exists()


def test_lock_makes_a_second_holder_wait_and_names_the_first(tmp_path):
    final = tmp_path / "train" / "abc"
    order, waited_for = [], []
    with artifact_lock(final):
        def second():
            with artifact_lock(final, on_wait=waited_for.append):
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
    final = tmp_path / "train" / "abc"
    inside, overlaps = [], []

    def worker():
        for _ in range(20):
            with artifact_lock(final):
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


def test_meta_lists_every_file_and_verify_finds_each_change(tmp_path):
    directory = tmp_path / "train" / "abc"
    directory.mkdir(parents=True)
    (directory / "model.keras").write_bytes(b"weights")
    (directory / "tensorboard").mkdir()
    (directory / "tensorboard" / "events").write_bytes(b"e")
    write_meta(directory, "train", "abc", {}, {}, RunClock())
    meta = json.loads((directory / META_FILE).read_text())
    assert set(meta["checksums"]) == {"model.keras", "tensorboard/events"}
    assert meta["checksums"]["model.keras"]["sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert verify_artifact(directory) == []

    (directory / "model.keras").write_bytes(b"weightz")
    (directory / "tensorboard" / "events").unlink()
    (directory / "extra").write_text("x")
    problems = verify_artifact(directory)
    assert [line.split(": ")[1].split(" ")[0] for line in problems] == ["altered", "missing", "not"]
    assert str(directory / "model.keras") in problems[0]

    (directory / META_FILE).unlink()
    assert not is_complete(directory)
    assert "no meta.json" in verify_artifact(directory)[0]


def test_lock_holder_names_a_running_holder_and_none_otherwise(tmp_path):
    final = tmp_path / "train" / "abc"
    assert lock_holder(final) is None
    with artifact_lock(final):
        held = []
        thread = threading.Thread(target=lambda: held.append(lock_holder(final)))
        thread.start()
        thread.join(5)
    assert held and f"pid {os.getpid()}" in held[0]
    assert lock_holder(final) is None
