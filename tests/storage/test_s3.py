"""The S3 store against a real object store (OpenStack Swift's S3 layer): whole or absent, cached, explained."""

import json
import logging

import pytest

from conftest import bucket_keys
from pipeline.artifacts import RunClock, write_meta
from pipeline.errors import PipelineError
from pipeline.storage.s3 import S3Store, StoreError, make_client
from swift_server import ACCESS_KEY, REGION, SECRET_KEY

pytestmark = pytest.mark.s3


def store_at(swift, root: str, cache) -> S3Store:
    return S3Store(root, swift.client(), cache)


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
    keys = bucket_keys(swift, s3_root)
    attempt = json.loads(store.client.get_object(Bucket=store.bucket, Key="outputs/train/abc/meta.json")["Body"]
                         .read())["attempt"]
    assert set(keys) == {"train/abc/meta.json", f"train/abc/{attempt}/model.keras",
                         f"train/abc/{attempt}/tensorboard/events"}
    assert store.verify("train", "abc") == []
    fetched = store.fetch("train", "abc")
    assert (fetched / "model.keras").read_bytes() == b"weights"
    stamp = (fetched / "model.keras").stat().st_mtime_ns
    assert store.fetch("train", "abc") == fetched and (fetched / "model.keras").stat().st_mtime_ns == stamp
    assert store.ids("train") == ["abc"]


def test_two_writers_of_one_id_leave_one_whole_attempt(swift, s3_root, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pipeline.storage.s3")
    first = store_at(swift, s3_root, tmp_path / "host-a")
    second = store_at(swift, s3_root, tmp_path / "host-b")
    with first.staging("train", "abc") as staging_a:
        write_artifact(staging_a, model=b"weights-a")
        with second.staging("train", "abc") as staging_b:  # no luigid: both compute the same step
            write_artifact(staging_b, model=b"weights-b")
    assert "already in place" in caplog.text
    keys = bucket_keys(swift, s3_root)
    assert len(keys) == 3, keys
    assert first.verify("train", "abc") == [] and first.status("train", "abc").finished


@pytest.mark.parametrize("damage, reason", [
    ("delete", "tensorboard/events is missing"),
    ("shrink", "model.keras has 3 bytes where meta.json recorded 7"),
])
def test_an_attempt_missing_a_file_or_with_a_short_one_is_not_finished(swift, s3_root, tmp_path, damage, reason):
    store = store_at(swift, s3_root, tmp_path / "cache")
    with store.staging("train", "abc") as staging:
        write_artifact(staging)
    attempt = store.read_meta("train", "abc")["attempt"]
    if damage == "delete":
        store.client.delete_object(Bucket=store.bucket, Key=f"outputs/train/abc/{attempt}/tensorboard/events")
    else:
        store.client.put_object(Bucket=store.bucket, Key=f"outputs/train/abc/{attempt}/model.keras", Body=b"abc")
    status = store.status("train", "abc")
    assert not status.finished and status.problem == reason
    store.discard_unfinished("train", "abc")
    assert bucket_keys(swift, s3_root) == {}


def test_fetch_refuses_an_object_whose_bytes_changed(swift, s3_root, tmp_path):
    store = store_at(swift, s3_root, tmp_path / "cache")
    with store.staging("train", "abc") as staging:
        write_artifact(staging)
    attempt = store.read_meta("train", "abc")["attempt"]
    store.client.put_object(Bucket=store.bucket, Key=f"outputs/train/abc/{attempt}/model.keras", Body=b"WEIGHTS")
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
    host_a.push_work("train", "abc", last=lambda name: name.endswith("state.json"))

    def newest(names):
        return max((int(name[11:15]) for name in names if name.endswith("/state.json")), default=-1)

    assert host_b.pull_work("train", "abc", newest)
    assert (host_b.work_dir("train", "abc") / "ckpt-epoch-0001" / "state.data").read_bytes() == b"state"
    assert not host_b.pull_work("train", "abc", newest), "an up-to-date work directory was fetched again"
    host_a.drop_work("train", "abc")
    assert bucket_keys(swift, s3_root) == {} and not work.exists()


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


def test_an_old_uncommitted_attempt_is_reported_then_removed_and_a_young_one_is_left_alone(swift, s3_root, tmp_path):
    store = store_at(swift, s3_root, tmp_path / "cache")
    old, young = "20260101T000000Z-deadhost-1-abcdef", "29991231T235959Z-busyhost-2-abcdef"
    for attempt in (old, young):
        store.client.put_object(Bucket=store.bucket, Key=f"outputs/train/abc/{attempt}/model.keras", Body=b"half")
    with store.staging("train", "abc") as staging:
        write_artifact(staging)
    assert not any(old in key for key in bucket_keys(swift, s3_root)), "a dead writer's attempt stayed"
    assert any(young in key for key in bucket_keys(swift, s3_root)), "a writer that may be at work lost its files"
    assert store.verify("train", "abc") == []
    store.client.put_object(Bucket=store.bucket, Key=f"outputs/train/abc/{old}/model.keras", Body=b"half")
    (problem,) = store.verify("train", "abc")
    assert f"train/abc/{old}/: an attempt that was not committed" in problem
