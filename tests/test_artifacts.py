"""Artifact ids and atomic directories."""

import errno

import pytest

from pipeline.artifacts import artifact_id, atomic_directory
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
