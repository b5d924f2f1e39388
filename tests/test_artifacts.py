"""Artifact ids, atomic directories, what \"finished\" means, and meta.json checksums."""

import errno
import hashlib
import json
import logging
import os
import socket
from pathlib import Path

import pytest

from pipeline.artifacts import (META_FILE, RunClock, artifact_id, atomic_directory, directory_problem,
                                remove_leftovers, verify_artifact, write_meta)
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
    with pytest.raises(PipelineError, match=rf"The file system of {tmp_path} \(mounted at /.*\) is full: .*"
                                            r"it needs about 5.0 MB.*\(--paths-outputs\)"):
        with atomic_directory(tmp_path / "id", needed=5_000_000) as staging:
            (staging / "half").write_bytes(b"x" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_any_host_are_removed_by_the_lock_holder(tmp_path):
    stale = [tmp_path / f".id.tmp-{host}-{os.getpid()}-abcdef" for host in ("other-host", socket.gethostname())]
    stale.append(tmp_path / ".id.unfinished-123456")
    for path in stale:
        path.mkdir()
    (tmp_path / ".other.tmp-host-1-abcdef").mkdir()
    assert sorted(remove_leftovers(tmp_path / "id")) == sorted(stale)
    assert [path.name for path in tmp_path.iterdir()] == [".other.tmp-host-1-abcdef"]


def test_a_finished_twin_already_in_place_wins_and_the_copy_is_discarded(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pipeline.artifacts")
    final = tmp_path / "step" / "id"
    with atomic_directory(final, finished=lambda path: directory_problem(path, "id") is None) as staging:
        (staging / "mine").write_text("mine")
        # Another run commits the same artifact while this one is still writing.
        final.mkdir()
        (final / "theirs").write_text("theirs")
        write_meta(final, "step", "id", {}, {}, RunClock())
    assert sorted(p.name for p in final.iterdir()) == [META_FILE, "theirs"]
    assert [p.name for p in final.parent.iterdir()] == ["id"], "the staging copy was left behind"
    assert "already in place (made by another run)" in caplog.text


def test_an_unfinished_directory_in_the_way_is_not_taken_for_a_twin(tmp_path):
    final = tmp_path / "id"
    with pytest.raises(OSError):
        with atomic_directory(final, finished=lambda path: directory_problem(path, "id") is None) as staging:
            (staging / "mine").write_text("mine")
            final.mkdir()
            (final / "half").write_text("x")
    assert directory_problem(final, "id") == "it has no readable meta.json"


def test_files_and_directories_are_flushed_before_the_rename(tmp_path, monkeypatch):
    synced, renamed = [], []
    real_fsync, real_rename = os.fsync, os.rename
    monkeypatch.setattr(os, "fsync", lambda descriptor: (synced.append(os.readlink(f"/proc/self/fd/{descriptor}")),
                                                          real_fsync(descriptor)))
    monkeypatch.setattr(os, "rename", lambda a, b: (renamed.append((len(synced), str(b))), real_rename(a, b)))
    final = tmp_path / "step" / "id"
    with atomic_directory(final) as staging:
        (staging / "sub").mkdir()
        (staging / "sub" / "model.keras").write_bytes(b"w")
        (staging / META_FILE).write_text("{}")
    flushed_before_rename = {Path(path).name for path in synced[:renamed[0][0]]}
    assert {"model.keras", META_FILE, "sub"} <= flushed_before_rename
    assert Path(synced[-1]) == final.parent, "the parent directory is flushed after the rename"


@pytest.mark.parametrize("damage, reason", [
    (lambda d: (d / "model.keras").write_bytes(b"x" * 100), "model.keras has 100 bytes where meta.json recorded 7"),
    (lambda d: (d / "tensorboard" / "events").unlink(), "tensorboard/events is missing"),
    (lambda d: (d / META_FILE).write_text('{"artifact_id": "abc"'), "it has no readable meta.json"),
    (lambda d: (d / META_FILE).write_text(
        (d / META_FILE).read_text().replace('"abc"', '"other"')), "its meta.json names artifact 'other', not 'abc'"),
])
def test_an_artifact_is_finished_only_with_every_recorded_file_at_its_size(tmp_path, damage, reason):
    directory = tmp_path / "train" / "abc"
    (directory / "tensorboard").mkdir(parents=True)
    (directory / "model.keras").write_bytes(b"weights")
    (directory / "tensorboard" / "events").write_bytes(b"e")
    write_meta(directory, "train", "abc", {}, {}, RunClock())
    assert directory_problem(directory, "abc") is None
    damage(directory)
    assert directory_problem(directory, "abc") == reason


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
    assert directory_problem(directory, "abc") is not None
    assert "no readable meta.json" in verify_artifact(directory)[0]
