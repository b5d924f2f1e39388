"""The S3 store against a real object store (OpenStack Swift's S3 layer): whole or absent, cached, explained."""

import json
import logging

import pytest

from conftest import bucket_keys, output_of
from pipeline.artifacts import RunClock, write_meta
from pipeline.errors import PipelineError
from pipeline.storage.s3 import S3Store, StoreError, make_client
from swift_server import ACCESS_KEY, REGION, SECRET_KEY

pytestmark = pytest.mark.s3


def store_at(swift, root: str, cache) -> S3Store:
    return S3Store(root, swift.client(), cache)


def data_key(checksums, relative):
    return f"outputs/train/abc/data/{checksums[relative]['sha256']}"


def write_artifact(staging, identity="abc", model=b"weights"):
    (staging / "model.keras").write_bytes(model)
    (staging / "tensorboard").mkdir()
    (staging / "tensorboard" / "events").write_bytes(b"events")
    write_meta(staging, "train", identity, {"epochs": 1}, {}, RunClock())


def test_a_committed_artifact_is_whole_verified_and_fetched_once(swift, s3_root, tmp_path, monkeypatch):
    store = store_at(swift, s3_root, tmp_path / "cache")
    assert store.status("train", "abc").absent
    seen_before_commit, put_object = [], store.client.put_object

    def watching_put_object(**kwargs):
        if kwargs["Key"].endswith("/meta.json"):
            seen_before_commit.append((store.status("train", "abc"), len(bucket_keys(swift, s3_root))))
        return put_object(**kwargs)

    monkeypatch.setattr(store.client, "put_object", watching_put_object)
    with store.staging("train", "abc") as staging:
        write_artifact(staging)
    assert seen_before_commit[0][0].absent and seen_before_commit[0][1] == 2, \
        "meta.json was not the last object, or readers saw the artifact before it"
    assert store.status("train", "abc").finished
    meta = store.read_meta("train", "abc")
    assert set(bucket_keys(swift, s3_root)) == {"train/abc/meta.json", *(
        f"train/abc/data/{entry['sha256']}" for entry in meta["checksums"].values())}
    assert store.verify("train", "abc") == []
    fetched = store.fetch("train", "abc")
    assert (fetched / "model.keras").read_bytes() == b"weights"
    stamp = (fetched / "model.keras").stat().st_mtime_ns
    assert store.fetch("train", "abc") == fetched and (fetched / "model.keras").stat().st_mtime_ns == stamp
    assert store.ids("train") == ["abc"]


def test_two_writers_of_one_id_both_commit_whole_and_gc_removes_the_loser(swift, s3_root, tmp_path, monkeypatch):
    first = store_at(swift, s3_root, tmp_path / "host-a")
    second = store_at(swift, s3_root, tmp_path / "host-b")
    put_object, deleted = first.client.put_object, []
    monkeypatch.setattr(first.client, "delete_objects", lambda **kwargs: deleted.append(kwargs))

    def second_commits_first(**kwargs):  # put(B), read(B), then put(A), read(A), on the real store
        if kwargs["Key"].endswith("/meta.json") and not getattr(second_commits_first, "done", False):
            second_commits_first.done = True
            with second.staging("train", "abc") as staging_b:
                write_artifact(staging_b, model=b"weights-b")
        return put_object(**kwargs)

    monkeypatch.setattr(first.client, "put_object", second_commits_first)
    with first.staging("train", "abc") as staging_a:
        write_artifact(staging_a, model=b"weights-a")
    assert deleted == [], "a commit deleted objects another host may be reading"
    monkeypatch.undo()
    assert first.status("train", "abc").finished and first.verify("train", "abc") == []
    assert (second.fetch("train", "abc") / "model.keras").read_bytes() == b"weights-a"  # Swift: the last one wins
    assert len(bucket_keys(swift, s3_root)) == 4, "both writers' model.keras, the shared events, meta.json"
    (loser,) = first.garbage(["train"], older_than_s=3600 * 24) or [None]
    assert loser is None, "gc would remove a young object"
    (loser,) = first.garbage(["train"], older_than_s=0)
    assert loser.reason == "not listed by its meta.json"
    first.collect([loser])
    assert len(bucket_keys(swift, s3_root)) == 3 and first.verify("train", "abc") == []


@pytest.mark.parametrize("damage, reason", [
    ("delete", "tensorboard/events is missing"),
    ("shrink", "model.keras has 3 bytes where meta.json recorded 7"),
])
def test_an_attempt_missing_a_file_or_with_a_short_one_is_not_finished(swift, s3_root, tmp_path, damage, reason):
    store = store_at(swift, s3_root, tmp_path / "cache")
    with store.staging("train", "abc") as staging:
        write_artifact(staging)
    checksums = store.read_meta("train", "abc")["checksums"]
    if damage == "delete":
        store.client.delete_object(Bucket=store.bucket, Key=data_key(checksums, "tensorboard/events"))
    else:
        store.client.put_object(Bucket=store.bucket, Key=data_key(checksums, "model.keras"), Body=b"abc")
    status = store.status("train", "abc")
    assert not status.finished and status.problem == reason
    with store.staging("train", "abc") as staging:  # the next run's commit replaces it, deleting nothing
        write_artifact(staging)
    assert store.status("train", "abc").finished and store.verify("train", "abc") == []


def test_fetch_refuses_an_object_whose_bytes_changed(swift, s3_root, tmp_path):
    store = store_at(swift, s3_root, tmp_path / "cache")
    with store.staging("train", "abc") as staging:
        write_artifact(staging)
    checksums = store.read_meta("train", "abc")["checksums"]
    store.client.put_object(Bucket=store.bucket, Key=data_key(checksums, "model.keras"), Body=b"WEIGHTS")
    with pytest.raises(StoreError, match="does not match the sha256"):
        store.fetch("train", "abc")
    assert not (tmp_path / "cache" / "s3" / store.bucket / "outputs" / "artifacts" / "train" / "abc").exists()
    assert any("altered" in line for line in store.verify("train", "abc"))


def test_work_directories_travel_between_hosts(swift, s3_root, tmp_path):
    host_a = store_at(swift, s3_root, tmp_path / "host-a")
    host_b = store_at(swift, s3_root, tmp_path / "host-b")
    work = host_a.work_dir("train", "abc")
    (work / "ckpt-epoch-0001").mkdir(parents=True)
    (work / "ckpt-epoch-0001" / "state.data").write_bytes(b"state")
    (work / "ckpt-epoch-0001" / "state.json").write_text('{"epoch": 1}')
    def newest(names):
        return max((int(name[11:15]) for name in names if name.endswith("/state.json")), default=-1)

    host_a.push_work("train", "abc", newest)

    assert host_b.pull_work("train", "abc", newest)
    assert (host_b.work_dir("train", "abc") / "ckpt-epoch-0001" / "state.data").read_bytes() == b"state"
    assert not host_b.pull_work("train", "abc", newest), "an up-to-date work directory was fetched again"
    host_a.drop_work("train", "abc")
    assert bucket_keys(swift, s3_root) != {}, "the work of an unfinished training was deleted"
    with host_a.staging("train", "abc") as staging:
        write_artifact(staging)
    host_a.drop_work("train", "abc")
    assert not any(key.startswith("train/abc.incomplete/") for key in bucket_keys(swift, s3_root))
    assert not work.exists()


def test_unreachable_endpoint_wrong_credentials_and_missing_bucket_are_explained(swift, s3_root, tmp_path):
    from swift_server import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"
    unreachable = S3Store(s3_root, make_client({"endpoint_url": endpoint, "aws_access_key_id": ACCESS_KEY,
                                                "aws_secret_access_key": SECRET_KEY, "region_name": REGION}),
                          tmp_path)
    with pytest.raises(StoreError, match=f"Cannot reach the object store {endpoint} .*AWS_ENDPOINT_URL"):
        unreachable.status("train", "abc")
    refused = S3Store(s3_root, make_client({"endpoint_url": swift.endpoint, "aws_access_key_id": ACCESS_KEY,
                                            "aws_secret_access_key": "wrong", "region_name": REGION}), tmp_path)
    with pytest.raises(StoreError, match="refused the credentials for bucket .*AWS_SECRET_ACCESS_KEY"):
        refused.status("train", "abc")
    missing = store_at(swift, "s3://no-such-bucket-here/outputs", tmp_path)
    with pytest.raises(StoreError, match="The bucket 'no-such-bucket-here' does not exist"):
        missing.status("train", "abc")
    assert issubclass(StoreError, PipelineError)


def test_an_artifact_of_the_attempt_layout_is_still_read_and_its_uncommitted_attempts_are_garbage(swift, s3_root,
                                                                                                 tmp_path):
    store = store_at(swift, s3_root, tmp_path / "cache")
    local = tmp_path / "made"
    local.mkdir()
    write_artifact(local)
    meta = json.loads((local / "meta.json").read_text())
    committed, dead = "20260101T000000Z-host-1-abcdef", "20260101T000001Z-deadhost-2-abcdef"
    for relative in meta["checksums"]:
        store.client.put_object(Bucket=store.bucket, Key=f"outputs/train/abc/{committed}/{relative}",
                                Body=(local / relative).read_bytes())
    store.client.put_object(Bucket=store.bucket, Key=f"outputs/train/abc/{dead}/model.keras", Body=b"half")
    store.client.put_object(Bucket=store.bucket, Key="outputs/train/abc/meta.json",
                            Body=json.dumps({**meta, "attempt": committed}).encode())
    assert store.status("train", "abc").finished and store.verify("train", "abc") == []
    assert (store.fetch("train", "abc") / "model.keras").read_bytes() == b"weights"
    (garbage,) = store.garbage(["train"], older_than_s=0)
    assert garbage.location.endswith(f"train/abc/{dead}/model.keras")
    store.collect([garbage])
    assert store.status("train", "abc").finished and store.garbage(["train"], older_than_s=0) == []


@pytest.mark.slow
def test_three_writers_killed_at_random_never_leave_a_broken_artifact_and_gc_leaves_no_garbage(swift, s3_root,
                                                                                              tmp_path):
    """3 writer processes x 10 rounds on one artifact id, some SIGKILLed mid-commit (acceptance: the stress test)."""
    import random
    import signal
    import subprocess
    import sys
    import time

    from pathlib import Path

    from conftest import REPO_ROOT, s3_env

    env = s3_env(swift, tmp_path / "cache")

    def lenet_pipeline(*args, env):
        return subprocess.run([str(Path(sys.executable).with_name("lenet-pipeline")), *args], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
    store = store_at(swift, s3_root, tmp_path / "reader")
    chance = random.Random(20261202)
    killed = committed = 0
    for round_number in range(10):
        writers = [subprocess.Popen([sys.executable, str(REPO_ROOT / "tests" / "storage" / "commit_once.py"),
                                     s3_root, "stress", str(round_number * 3 + index), str(tmp_path / f"w{index}")],
                                    env=env, stdout=subprocess.PIPE, text=True) for index in range(3)]
        time.sleep(chance.uniform(0.5, 2.0))
        for writer in writers:
            if writer.poll() is None and chance.random() < 0.5:
                writer.send_signal(signal.SIGKILL)
        for writer in writers:
            output = writer.communicate(timeout=120)[0]
            killed += writer.returncode == -signal.SIGKILL
            committed += "committed" in output
            assert writer.returncode in (0, -signal.SIGKILL), output
        status = store.status("train", "stress")
        assert status.finished or status.absent, f"round {round_number}: {status.problem}"
        if store.read_meta("train", "stress") is not None:
            assert status.finished, f"round {round_number}: a meta.json names a missing object"
        verified = lenet_pipeline("verify", "--paths-outputs", s3_root, env=env)
        assert verified.returncode == 0, output_of(verified)
    assert killed and committed, (killed, committed)  # both outcomes happened
    collected = lenet_pipeline("gc", "--paths-outputs", s3_root, "--older-than", "0", env=env)
    assert collected.returncode == 0, output_of(collected)
    assert store.garbage(["train"], older_than_s=0) == []
    meta = store.read_meta("train", "stress")
    assert set(bucket_keys(swift, s3_root)) == {"train/stress/meta.json", *(
        f"train/stress/data/{entry['sha256']}" for entry in meta["checksums"].values())}
    assert store.verify("train", "stress") == []
