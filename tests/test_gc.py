"""``lenet-pipeline gc`` and ``verify`` on a local outputs root: what is garbage, what its age is, what stays."""

import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO_ROOT, cli_env, output_of
from pipeline.artifacts import RunClock, write_meta
from pipeline.locks import exclusive_lock
from pipeline.storage.local import LocalStore

DAY = 24 * 3600


def lenet_pipeline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("lenet-pipeline")), *args], cwd=REPO_ROOT,
                          env=cli_env(), capture_output=True, text=True, timeout=120)


def make_artifact(store: LocalStore, step: str, identity: str) -> Path:
    with store.staging(step, identity) as staging:
        (staging / "model.keras").write_bytes(b"weights")
        write_meta(staging, step, identity, {}, {}, RunClock())
    return store.location(step, identity)


def age(path: Path, seconds: float) -> None:
    """Make ``path`` and everything below it look untouched for ``seconds``."""
    stamp = time.time() - seconds
    for root, directories, files in os.walk(path):
        for name in [*directories, *files]:
            os.utime(os.path.join(root, name), (stamp, stamp))
    os.utime(path, (stamp, stamp))


def leftovers(outputs: Path) -> dict[str, Path]:
    """A killed run's staging directory, a set-aside one, a finished training's checkpoints, an idle lock."""
    store = LocalStore(outputs)
    make_artifact(store, "train", "abc")
    found = {"staging": outputs / "train" / ".abc.tmp-deadhost-42-abcdef",
             "aside": outputs / "train" / ".abc.unfinished-123456",
             "work": outputs / "train" / "abc.incomplete"}
    for path in found.values():
        (path / "ckpt-epoch-0001").mkdir(parents=True)
        (path / "ckpt-epoch-0001" / "state.data").write_bytes(b"x" * 1000)
    with exclusive_lock(outputs / "train" / ".abc.lock"):
        pass
    found["lock"] = outputs / "train" / ".abc.lock"
    return found


def test_gc_removes_only_old_garbage_and_verify_reports_it_without_failing(tmp_path):
    outputs = tmp_path / "out"
    found = leftovers(outputs)
    unfinished = outputs / "train" / "def.incomplete"  # a killed training: a rerun resumes from it
    (unfinished / "ckpt-epoch-0001").mkdir(parents=True)
    for path in [*found.values(), unfinished]:
        age(path, 2 * DAY)
    young = outputs / "train" / ".def.tmp-busyhost-7-abcdef"  # a run at work right now
    young.mkdir()

    verified = lenet_pipeline("verify", "--paths-outputs", str(outputs))
    assert verified.returncode == 0, output_of(verified)
    assert "garbage (information, not a problem): 4 items" in verified.stdout  # the young one too, no lock file

    dry = lenet_pipeline("gc", "--paths-outputs", str(outputs), "--dry-run")
    assert dry.returncode == 0, output_of(dry)
    assert all(f"would remove {path} " in dry.stdout for path in found.values()), dry.stdout
    assert all(path.exists() for path in found.values()), "--dry-run removed something"

    collected = lenet_pipeline("gc", "--paths-outputs", str(outputs))
    assert collected.returncode == 0, output_of(collected)
    assert "removed 4 items" in collected.stdout
    assert not any(path.exists() for path in found.values())
    assert young.exists() and unfinished.exists(), "gc removed a young run's files or resumable checkpoints"
    assert LocalStore(outputs).status("train", "abc").finished
    assert "no garbage" in lenet_pipeline("gc", "--paths-outputs", str(outputs)).stdout


def test_gc_leaves_the_files_of_an_artifact_whose_lock_is_held_and_younger_garbage(tmp_path):
    outputs = tmp_path / "out"
    found = leftovers(outputs)
    for path in found.values():
        age(path, 2 * DAY)
    with exclusive_lock(found["lock"]):  # a run is making this artifact again right now
        held = lenet_pipeline("gc", "--paths-outputs", str(outputs), "--older-than", "0")
    assert held.returncode == 0, output_of(held)
    assert all(path.exists() for path in found.values()), held.stdout
    young = lenet_pipeline("gc", "--paths-outputs", str(outputs), "--older-than", "3d")
    assert "no garbage older than 259200 s" in young.stdout and all(path.exists() for path in found.values())


def test_gc_rejects_a_malformed_duration(tmp_path):
    result = lenet_pipeline("gc", "--paths-outputs", str(tmp_path), "--older-than", "soon")
    assert result.returncode == 2 and "'soon' is not a duration" in result.stderr


def test_verify_and_gc_leave_a_missing_root_alone(tmp_path):
    for command in (["verify"], ["gc", "--dry-run"]):
        result = lenet_pipeline(*command, "--paths-outputs", str(tmp_path / "nowhere"))
        assert result.returncode == 0, output_of(result)
    assert not (tmp_path / "nowhere").exists()
