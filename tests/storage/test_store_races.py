"""The S3 store under forced interleavings of two writers (an in-memory client double), and its error messages.

The real-store counterparts are in test_s3.py (OpenStack Swift's S3 layer): these fix the order of
calls that two hosts can produce, which a real store shows only by chance.
"""

import logging

import pytest

from memory_s3 import MemoryS3, client_error
from pipeline.artifacts import RunClock, write_meta
from pipeline.storage.s3 import S3Store, StoreError, make_client

ROOT = "s3://bucket/outputs"
DELETES = ("delete_objects",)


def write_artifact(staging, identity="abc", model=b"weights"):
    (staging / "model.keras").write_bytes(model)
    (staging / "tensorboard").mkdir()
    (staging / "tensorboard" / "events").write_bytes(b"events")
    write_meta(staging, "train", identity, {"epochs": 1}, {}, RunClock())


def commit(store, model=b"weights", identity="abc"):
    with store.staging("train", identity) as staging:
        write_artifact(staging, identity, model)


def when(client, operation, key_end, action):
    """Run ``action`` once, just before the first ``operation`` on a key ending in ``key_end``."""
    done = []

    def hook(called, key):
        if not done and called == operation and key.endswith(key_end):
            done.append(True)
            action()

    client.hooks.append(hook)
    return done


def hosts(tmp_path, conditional=True):
    client = MemoryS3(conditional=conditional)
    return client, S3Store(ROOT, client, tmp_path / "host-a"), S3Store(ROOT, client, tmp_path / "host-b")


@pytest.mark.parametrize("conditional", [True, False], ids=["conditional-put", "no-conditional-put"])
def test_interleaved_writers_both_leave_a_whole_artifact_and_gc_removes_the_loser(tmp_path, conditional):
    """put(B), read(B), put(A), read(A): both 'win'; before, an attempt no meta.json named stayed for ever."""
    client, host_a, host_b = hosts(tmp_path, conditional)
    ran = when(client, "put_object", "train/abc/meta.json", lambda: commit(host_b, b"weights-b"))
    commit(host_a, b"weights-a")
    assert ran
    assert not [call for call in client.calls if call[0] in DELETES], "a commit deleted something"
    assert host_a.status("train", "abc").finished and host_a.verify("train", "abc") == []
    expected = b"weights-b" if conditional else b"weights-a"  # first meta.json wins, or the last one
    assert (host_a.fetch("train", "abc") / "model.keras").read_bytes() == expected
    client.advance(60)
    garbage = host_a.garbage(["train"], older_than_s=0)
    assert [item.location.rsplit("/", 2)[-2] for item in garbage] == ["data"], garbage
    host_a.collect(garbage)
    assert host_a.garbage(["train"], older_than_s=0) == []
    assert host_a.status("train", "abc").finished and host_b.verify("train", "abc") == []


def test_a_host_clearing_a_broken_artifact_never_deletes_what_another_just_committed(tmp_path):
    client, host_a, host_b = hosts(tmp_path)
    commit(host_a)
    client.objects.pop(next(key for key in client.objects if "/data/" in key))  # damaged by hand
    assert not host_a.status("train", "abc").finished
    when(client, "get_object", "train/abc/meta.json", lambda: commit(host_b, b"weights-b"))
    host_a.discard_unfinished("train", "abc")  # before: read meta.json, then deleted it and its files
    assert host_b.status("train", "abc").finished, "another host's committed artifact was un-committed"


def test_gc_ages_by_the_store_clock_so_a_slow_or_skewed_writer_keeps_its_uploads(tmp_path):
    client, host_a, host_b = hosts(tmp_path)
    swept = when(client, "put_object", "train/abc/meta.json",
                 lambda: host_b.collect(host_b.garbage(["train"], older_than_s=3600)))
    client.hooks.append(lambda operation, key: client.advance(1) if operation == "upload_file" else None)
    commit(host_a)  # host clocks play no part: an upload is as old as the store says
    assert swept and host_a.status("train", "abc").finished, "an in-flight upload was swept away"
    client.objects["outputs/train/abc/data/" + "0" * 64] = (b"orphan", client.now)
    client.advance(1800)
    assert host_b.garbage(["train"], older_than_s=3600) == []
    client.advance(3600)
    (orphan,) = host_b.garbage(["train"], older_than_s=3600)
    assert orphan.location.endswith("0" * 64) and orphan.reason == "not listed by its meta.json"


def test_a_reader_fetching_while_another_host_commits_gets_a_whole_copy(tmp_path):
    client, host_a, host_b = hosts(tmp_path, conditional=False)
    commit(host_a, b"weights-a")
    when(client, "download_fileobj", "", lambda: commit(host_b, b"weights-b"))
    fetched = host_a.fetch("train", "abc")  # before: the loser deleted its attempt while readers downloaded
    assert (fetched / "model.keras").read_bytes() == b"weights-a"


def newest(names):
    return max((int(name[11:15]) for name in names if name.endswith("/state.json")), default=-1)


def checkpoint(store, epoch, data=None):
    work = store.work_dir("train", "abc")
    folder = work / f"ckpt-epoch-{epoch:04d}"
    folder.mkdir(parents=True)
    (folder / "state.data").write_bytes(data or f"state {epoch}".encode())
    (folder / "state.json").write_text(f'{{"epoch": {epoch}}}')
    store.push_work("train", "abc", newest)


def test_resume_skips_a_checkpoint_whose_data_is_missing_for_the_one_before_with_one_warning(tmp_path, caplog):
    client, host_a, host_b = hosts(tmp_path)
    checkpoint(host_a, 1)
    checkpoint(host_a, 2)
    data_of_2 = [key for key, (body, _) in client.objects.items() if body == b"state 2"]
    client.objects.pop(data_of_2[0])  # a listing that lags, or a lost object
    caplog.set_level(logging.INFO, logger="pipeline.storage.s3")
    assert host_b.pull_work("train", "abc", newest)
    work = host_b.work_dir("train", "abc")
    assert (work / "ckpt-epoch-0001" / "state.data").read_bytes() == b"state 1"
    assert not (work / "ckpt-epoch-0002").exists()
    (warning,) = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert "Skipped 1 checkpoint" in warning.message and "state.data) is missing" in warning.message


def test_resume_rejects_altered_bytes_and_starts_over_when_nothing_checks_out(tmp_path, caplog):
    client, host_a, host_b = hosts(tmp_path)
    checkpoint(host_a, 1)
    key = next(key for key, (body, _) in client.objects.items() if body == b"state 1")
    client.objects[key] = (b"STATE 1", client.now)  # same size, other bytes
    caplog.set_level(logging.WARNING, logger="pipeline.storage.s3")
    assert not host_b.pull_work("train", "abc", newest)
    assert "does not match its manifest" in caplog.text and "starting over" in caplog.text
    assert not host_b.work_dir("train", "abc").exists()


def test_two_writers_of_one_work_prefix_never_delete_each_others_checkpoints(tmp_path):
    client, host_a, host_b = hosts(tmp_path)
    checkpoint(host_a, 1, b"a1")
    checkpoint(host_b, 1, b"b1")
    checkpoint(host_b, 2, b"b2")
    assert not [call for call in client.calls if call[0] in DELETES]
    assert {b"a1", b"b1", b"b2"} <= {body for body, _ in client.objects.values()}
    fresh = S3Store(ROOT, client, tmp_path / "host-c")
    assert fresh.pull_work("train", "abc", newest)
    assert (fresh.work_dir("train", "abc") / "ckpt-epoch-0002" / "state.data").read_bytes() == b"b2"


@pytest.mark.parametrize("code, status, message", [
    ("RequestTimeTooSkewed", 403, "this host's clock differs too much from the store's"),
    ("SlowDown", 503, "kept throttling requests"),
    ("InternalError", 500, "refused a request for s3://bucket/outputs: InternalError"),
])
def test_store_errors_are_one_line_naming_the_fix(tmp_path, code, status, message):
    client = MemoryS3()

    def fail(operation, key):
        raise client_error(code, status, "GetObject")

    client.hooks.append(fail)
    with pytest.raises(StoreError, match=message):
        S3Store(ROOT, client, tmp_path).status("train", "abc")


def test_an_object_removed_during_a_download_is_explained(tmp_path):
    client, host_a, _ = hosts(tmp_path)
    commit(host_a)
    when(client, "download_fileobj", "", lambda: client.objects.pop(
        next(key for key in client.objects if "/data/" in key and client.objects[key][0] == b"weights")))
    with pytest.raises(StoreError, match="disappeared while it was being fetched .*run again"):
        host_a.fetch("train", "abc")


@pytest.mark.parametrize("endpoint", ["127.0.0.1:9000", "ftp://store", "http://"])
def test_a_malformed_endpoint_is_explained_before_any_request(monkeypatch, endpoint):
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    with pytest.raises(StoreError, match=f"endpoint '{endpoint}' .* is not an http\\(s\\) URL"):
        make_client({"region_name": "us-east-1", "aws_access_key_id": "a", "aws_secret_access_key": "b"})
