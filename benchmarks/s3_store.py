"""The S3 store: the no-op rerun on an s3:// root, and a Train artifact's upload and download.

    python -m benchmarks.s3_store [--repeats 5]

Against the endpoint and credentials of the standard AWS variables (AWS_ENDPOINT_URL, ...) and
``--bucket``; without AWS_ENDPOINT_URL it starts OpenStack Swift with its S3 layer on loopback
(Debian's swift-proxy, swift-account, swift-container, swift-object and memcached), as the tests do.
In one run, interleaved:

- the no-op rerun of ``luigi --module tasks Evaluate`` on an ``s3://`` root, against the same on
  a local root and against a trivial, complete Luigi task;
- committing a Train artifact (``S3Store.commit``: every file, ``meta.json`` last, the read-back)
  against plain boto3 ``upload_file`` of the same files, one after another;
- fetching it into an empty cache (``S3Store.fetch``: every file, each checked against its sha256)
  against plain boto3 ``download_file`` of the same files;
- ``lenet-pipeline gc``'s work (``S3Store.garbage`` then ``collect``) on ``--gc-objects``
  unreferenced objects beside the finished artifacts, against plain boto3 listing and deleting the
  same number of keys under one prefix (``--gc-rounds`` rounds; the uploads are not timed).

Ratios are baseline time / ours, so above 1 means ours is faster.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.common import REPO_ROOT, interleaved, machine_summary, medians, python_command, run_measured


def _swift(directory: Path):
    sys.path.insert(0, str(REPO_ROOT / "deploy" / "swift"))
    from swift_server import TemporarySwift

    return TemporarySwift(directory)


def main() -> None:
    """Prepare finished runs on S3 and locally, then time the no-op reruns and the transfers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bucket", default=None, help="an existing bucket (default: a new one)")
    parser.add_argument("--gc-objects", type=int, default=1000, help="unreferenced objects gc removes per round")
    parser.add_argument("--gc-rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        swift = None if os.environ.get("AWS_ENDPOINT_URL") else _swift(scratch / "swift")
        env = {**(swift.environment() if swift else {}), "XDG_CACHE_HOME": str(scratch / "cache")}
        os.environ.update(env)
        try:
            measure(args, scratch, env)
        finally:
            if swift:
                swift.stop()


def measure(args, scratch: Path, env: dict) -> None:
    """Run the three comparisons against the store the environment points at."""
    from pipeline.storage.s3 import S3Store, make_client

    client = make_client()
    bucket = args.bucket or f"lenet-bench-{uuid.uuid4().hex[:8]}"
    if not args.bucket:
        client.create_bucket(Bucket=bucket)
    s3_root, local_root = f"s3://{bucket}/noop", str(scratch / "local")
    runs = {}
    for name, root in (("s3", s3_root), ("local", local_root)):
        runs[name] = python_command("-m", "luigi", "--module", "tasks", "Evaluate", "--local-scheduler",
                                    "--data-dataset", "synthetic", "--Train-epochs", "1", "--paths-outputs", root)
        first = run_measured(runs[name], env)
        if first["returncode"] != 0:
            raise SystemExit(f"preparing the {name} run failed:\n{first['output'][-3000:]}")
    marker = scratch / "trivial.done"
    marker.write_text("done\n")
    trivial = python_command("-m", "luigi", "--module", "benchmarks.trivial", "Trivial", "--local-scheduler",
                             "--path", str(marker))

    def noop(command):
        def timed() -> float:
            result = run_measured(command, env)
            if result["returncode"] != 0 or "Did not run any tasks" not in result["output"]:
                raise SystemExit(f"not a no-op:\n{result['output'][-3000:]}")
            return result["wall_s"]
        return timed

    store = S3Store(s3_root, client, scratch / "cache" / "bench")
    (train_id,) = store.ids("train")
    artifact = store.fetch("train", train_id)
    files = sorted(path.relative_to(artifact).as_posix() for path in artifact.rglob("*")
                   if path.is_file() and path.name != "meta.json")
    total_bytes = sum((artifact / name).stat().st_size for name in files)

    def ours_upload() -> float:
        identity = uuid.uuid4().hex[:12]
        staging = scratch / "staging" / identity
        shutil.copytree(artifact, staging)
        meta = (staging / "meta.json").read_text().replace(train_id, identity)
        (staging / "meta.json").write_text(meta)
        started = time.monotonic()
        store.commit("train", identity, staging)
        elapsed = time.monotonic() - started
        shutil.rmtree(staging)
        return elapsed

    def plain_upload() -> float:
        prefix = f"plain/{uuid.uuid4().hex[:12]}"
        started = time.monotonic()
        for name in files:
            client.upload_file(str(artifact / name), bucket, f"{prefix}/{name}")
        return time.monotonic() - started

    plain_keys = f"plain-source/{train_id}"
    for name in files:
        client.upload_file(str(artifact / name), bucket, f"{plain_keys}/{name}")

    def ours_download() -> float:
        fresh = S3Store(s3_root, client, scratch / "cache" / uuid.uuid4().hex[:8])
        started = time.monotonic()
        fresh.fetch("train", train_id)
        return time.monotonic() - started

    def plain_download() -> float:
        target = scratch / "plain-download" / uuid.uuid4().hex[:8]
        started = time.monotonic()
        for name in files:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, f"{plain_keys}/{name}", str(target / name))
        return time.monotonic() - started

    print(f"s3_store on {machine_summary()}, endpoint {client.meta.endpoint_url}: "
          f"{args.repeats} interleaved rounds (seconds); Train artifact of {len(files)} files, {total_bytes:,} bytes")
    times = medians(interleaved({
        "trivial_task": noop(trivial), "local_noop": noop(runs["local"]), "s3_noop": noop(runs["s3"]),
        "plain_upload": plain_upload, "ours_upload": ours_upload,
        "plain_download": plain_download, "ours_download": ours_download,
    }, args.repeats))
    for name, value in times.items():
        print(f"{name:15s} median {value:.3f} s")
    print(f"ratio s3 no-op / trivial task: {times['s3_noop'] / times['trivial_task']:.2f}")
    print(f"ratio s3 no-op / local no-op: {times['s3_noop'] / times['local_noop']:.2f}")
    print(f"upload, plain boto3 / ours: {times['plain_upload'] / times['ours_upload']:.2f}")
    print(f"download, plain boto3 / ours: {times['plain_download'] / times['ours_download']:.2f}")
    measure_gc(store, client, bucket, train_id, args.gc_objects, args.gc_rounds)


def measure_gc(store, client, bucket: str, train_id: str, count: int, rounds: int) -> None:
    """Time gc of ``count`` unreferenced objects against plain boto3 list-and-delete of as many keys."""
    from concurrent.futures import ThreadPoolExecutor

    def put_many(prefix: str) -> None:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda index: client.put_object(Bucket=bucket, Key=f"{prefix}{index:064x}", Body=b"x"),
                          range(count)))

    def ours() -> float:
        put_many(f"{store.prefix}train/{train_id}/data/")
        started = time.monotonic()
        removed = store.collect(store.garbage(["download", "extract", "split", "train", "evaluate"], 0))
        elapsed = time.monotonic() - started
        assert len(removed) == count, len(removed)
        return elapsed

    def plain() -> float:
        prefix = f"plain-gc/{uuid.uuid4().hex[:8]}/"
        put_many(prefix)
        started = time.monotonic()
        keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                for item in page.get("Contents", [])]
        for start in range(0, len(keys), 1000):
            client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys[start:start + 1000]],
                                                         "Quiet": True})
        return time.monotonic() - started

    times = medians(interleaved({"plain_gc": plain, "ours_gc": ours}, rounds))
    print(f"gc of {count} unreferenced objects: ours median {times['ours_gc']:.3f} s, plain boto3 list+delete "
          f"{times['plain_gc']:.3f} s; plain / ours: {times['plain_gc'] / times['ours_gc']:.2f}")


if __name__ == "__main__":
    main()
