"""Artifacts under an S3 prefix, through boto3: uploaded whole, committed by ``meta.json`` last.

Layout, for an outputs root ``s3://BUCKET/PREFIX``::

    PREFIX/<step>/<id>/meta.json                 written last; names the attempt that holds the files
    PREFIX/<step>/<id>/<attempt>/<file>          one prefix per attempt: two writers never mix files
    PREFIX/<step>/<id>.incomplete/...            Train's checkpoints and events, every epoch

A step works in a local staging directory, uploads its files under a fresh attempt prefix, then
writes ``meta.json``. A reader sees the artifact only once ``meta.json`` names an attempt whose
files are all there with their recorded sizes, so it sees a whole artifact or none. When two
writers race (no ``luigid`` to keep them apart), the ``meta.json`` written last wins and the loser
removes its own attempt. A writer removes another's attempt only once it is an hour old, since
until then that writer may still be at work: so a race never leaves a ``meta.json`` naming removed
files. (Should two writers each read back their own ``meta.json``, the earlier one's attempt stays
until a later commit of that artifact, or ``remove``, clears it.)

Inputs are fetched into a local cache keyed by artifact id, each file checked against the sha256
``meta.json`` recorded. Locks are local to a host (exactly-once across hosts is ``luigid``'s job).
"""

import base64
import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from pipeline import locks
from pipeline.artifacts import (META_FILE, atomic_directory, completeness_problem, directory_problem,
                                discard_directory, full_disk_error, is_full_disk, read_meta, remove_leftovers, sha256_of,
                                staging_name, tree_bytes, verify_files, write_json)
from pipeline.errors import PipelineError
from pipeline.storage import ABSENT, FINISHED, WORK_SUFFIX, ArtifactLocks, ArtifactStatus, s3_cache_dir

log = logging.getLogger(__name__)

# Files are sent four at a time, each in 8 MiB parts, four parts at a time.
PART_BYTES = 8 << 20
TRANSFER_THREADS = 4
# Attempt prefixes begin with their start time; one older than this that meta.json does not name is
# a leftover (a writer that lost a race, or died), younger ones may be a writer still at work.
ATTEMPT_TIME = "%Y%m%dT%H%M%SZ"
STALE_ATTEMPT_S = 3600


class StoreError(PipelineError):
    """The object store cannot be used: unreachable, credentials refused, no such bucket."""


def client_config():
    """Return the botocore configuration the pipeline's S3 clients use.

    Checksums only where the API requires them: stores that implement S3 without the 2025
    default integrity headers (OpenStack Swift, older MinIO and Ceph) reject or ignore them.
    Short connection timeouts and three attempts, so an unreachable endpoint fails in seconds.
    """
    from botocore.config import Config

    return Config(request_checksum_calculation="when_required", response_checksum_validation="when_required",
                  connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"},
                  s3={"addressing_style": "path"})


def _add_content_md5(params, **_):
    """Give DeleteObjects the Content-MD5 header S3 requires and boto3 >= 1.36 no longer sends."""
    headers = params["headers"]
    if "Content-MD5" not in headers and not any(name.lower().startswith("x-amz-checksum-") for name in headers):
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(params["body"]).digest()).decode()


def prepare_client(client):
    """Return ``client`` with the request hooks the store needs (Content-MD5 on DeleteObjects)."""
    client.meta.events.register("before-call.s3.DeleteObjects", _add_content_md5)
    return client


def make_client(options: dict | None = None):
    """Return a boto3 S3 client; ``options`` (endpoint_url, region_name, keys) else the AWS variables."""
    import boto3

    return prepare_client(boto3.client("s3", config=client_config(), **(options or {})))


def transfer_config():
    """Return the boto3 transfer settings for uploads and downloads."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES,
                          max_concurrency=TRANSFER_THREADS)


def parse_uri(uri: str) -> tuple[str, str]:
    """Return (bucket, prefix ending in '/' or empty) of ``s3://BUCKET/PREFIX``."""
    rest = uri[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise StoreError(f"{uri!r} names no bucket: write the outputs root as s3://BUCKET/PREFIX "
                         "([paths] outputs, --paths-outputs).")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


class S3Store(ArtifactLocks):
    """An outputs root ``s3://BUCKET/PREFIX``; ``cache_dir`` holds fetched inputs, staging and work."""

    def __init__(self, uri: str, client, cache_dir: Path):
        self.bucket, self.prefix = parse_uri(uri)
        self.client = client
        self.root_uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.cache = s3_cache_dir(self.root_uri, cache_dir)
        self._transfer = transfer_config()

    def __repr__(self):
        return f"S3Store({self.root_uri!r})"

    # -- errors -----------------------------------------------------------------------------------

    def _endpoint(self) -> str:
        return self.client.meta.endpoint_url

    def _call(self, operation: str, **kwargs):
        """Call a client method; the failures a user causes become one StoreError naming the fix."""
        with self._explained():
            return getattr(self.client, operation)(**kwargs)

    @contextlib.contextmanager
    def _explained(self):
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

        try:
            yield
        except ClientError as error:
            explained = self._explain(error)
            if explained is error:
                raise
            raise explained from error
        except S3UploadFailedError as error:
            cause = error.__context__
            raise (self._explain(cause) if isinstance(cause, ClientError) else StoreError(
                f"Uploading to {self.root_uri} at {self._endpoint()} failed: {error}")) from error
        except NoCredentialsError as error:
            raise StoreError(f"No credentials for {self.root_uri} at {self._endpoint()}: set AWS_ACCESS_KEY_ID "
                             "and AWS_SECRET_ACCESS_KEY, or aws_access_key_id and aws_secret_access_key in "
                             "luigi.cfg's [s3] section.") from error
        except EndpointConnectionError as error:
            raise StoreError(f"Cannot reach the object store {self._endpoint()} for {self.root_uri}: start it, "
                             "or fix AWS_ENDPOINT_URL or [s3] endpoint_url.") from error
        except BotoCoreError as error:
            raise StoreError(f"The object store {self._endpoint()} failed for {self.root_uri}: {error}") from error

    def _explain(self, error) -> Exception:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            return StoreError(f"The bucket {self.bucket!r} does not exist at {self._endpoint()}: create it "
                              f"(aws s3 mb s3://{self.bucket}) or fix [paths] outputs (--paths-outputs).")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "InvalidToken",
                    "ExpiredToken"):
            return StoreError(f"{self._endpoint()} refused the credentials for bucket {self.bucket!r} ({code}): "
                              "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or [s3] aws_access_key_id "
                              "and aws_secret_access_key).")
        return error

    @staticmethod
    def _is_missing(error) -> bool:
        return str(error.response.get("Error", {}).get("Code", "")) in ("NoSuchKey", "404", "NotFound")

    # -- keys and listings ------------------------------------------------------------------------

    def _base(self, step: str, identity: str) -> str:
        return f"{self.prefix}{step}/{identity}/"

    def uri(self, step: str, identity: str) -> str:
        """Return where the artifact is, for messages and records."""
        return f"s3://{self.bucket}/{self._base(step, identity)}".rstrip("/")

    def describe(self) -> str:
        return self.root_uri

    def _list(self, prefix: str, delimiter: str | None = None) -> tuple[dict[str, int], list[str]]:
        """Return ({key: size}, [common prefixes]) below ``prefix``, every page."""
        objects, prefixes, token = {}, [], None
        while True:
            kwargs = {"Bucket": self.bucket, "Prefix": prefix}
            if delimiter:
                kwargs["Delimiter"] = delimiter
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call("list_objects_v2", **kwargs)
            objects.update({item["Key"]: item["Size"] for item in page.get("Contents", [])})
            prefixes += [item["Prefix"] for item in page.get("CommonPrefixes", [])]
            if not page.get("IsTruncated"):
                return objects, prefixes
            token = page["NextContinuationToken"]

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = keys[start:start + 1000]
            self._call("delete_objects", Bucket=self.bucket,
                       Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True})

    def _delete_prefix(self, prefix: str) -> int:
        keys = sorted(self._list(prefix)[0])
        self._delete_keys(keys)
        return len(keys)

    def _get_json(self, key: str):
        from botocore.exceptions import ClientError

        try:
            body = self._call("get_object", Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if self._is_missing(error):
                return None
            raise
        try:
            return json.loads(body)
        except ValueError:
            return None

    # -- status -----------------------------------------------------------------------------------

    def read_meta(self, step: str, identity: str) -> dict | None:
        return self._get_json(self._base(step, identity) + META_FILE)

    def _attempt_sizes(self, step: str, identity: str, attempt: str) -> dict[str, int]:
        prefix = f"{self._base(step, identity)}{attempt}/"
        return {key[len(prefix):]: size for key, size in self._list(prefix)[0].items()}

    def status(self, step: str, identity: str) -> ArtifactStatus:
        """Return whether the artifact is finished: ``meta.json`` names it and an attempt whose files all have their sizes."""
        meta = self.read_meta(step, identity)
        if meta is None:
            return ABSENT
        attempt = meta.get("attempt")
        if not attempt:
            return ArtifactStatus(False, f"its {META_FILE} names no attempt")
        sizes = self._attempt_sizes(step, identity, attempt)
        # A listing may lag behind the objects just written (Swift updates container listings
        # asynchronously): what the listing lacks is asked of the objects themselves.
        for relative, expected in (meta.get("checksums") or {}).items():
            if sizes.get(relative) != expected.get("bytes"):
                size = self._object_size(f"{self._base(step, identity)}{attempt}/{relative}")
                if size is not None:
                    sizes[relative] = size
        problem = completeness_problem(meta, identity, sizes)
        return FINISHED if problem is None else ArtifactStatus(False, problem)

    def _object_size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return self._call("head_object", Bucket=self.bucket, Key=key)["ContentLength"]
        except ClientError as error:
            if self._is_missing(error):
                return None
            raise

    # -- writing ----------------------------------------------------------------------------------

    def _lock_path(self, step: str, identity: str) -> Path:
        # This host's: runs on one host take turns; across hosts, luigid keeps a task to one worker.
        return self.cache / "locks" / step / f".{identity}.lock"

    def discard_unfinished(self, step: str, identity: str) -> None:
        """Remove a committed but broken artifact: its meta.json, then the attempt it names.

        Only what a finished writer left: attempts no meta.json names may belong to a writer on
        another host still at work (this host's lock does not reach it), so they stay until stale.
        """
        meta = self.read_meta(step, identity)
        if meta is not None and not self.status(step, identity).finished:
            base = self._base(step, identity)
            self._delete_keys([base + META_FILE])
            if meta.get("attempt"):
                self._delete_prefix(f"{base}{meta['attempt']}/")
        remove_leftovers(self.cache / "staging" / step / identity)

    @contextlib.contextmanager
    def staging(self, step: str, identity: str, needed: int | None = None):
        """Yield a local directory; when the block succeeds its files are uploaded and committed.

        ``needed``: about how many bytes the step writes, for the message if the cache's disk fills.
        """
        final = self.cache / "staging" / step / identity
        final.parent.mkdir(parents=True, exist_ok=True)
        local = final.parent / staging_name(final)
        local.mkdir()
        try:
            yield local
            self.commit(step, identity, local)
        except OSError as error:
            if is_full_disk(error, local):
                raise full_disk_error(local, tree_bytes(local), needed) from error
            raise
        finally:
            shutil.rmtree(local, ignore_errors=True)

    def commit(self, step: str, identity: str, local: Path) -> None:
        """Upload a finished local directory (its meta.json listing every file) as the artifact ``(step, id)``."""
        meta = json.loads((local / META_FILE).read_bytes())
        stamp = datetime.now(timezone.utc).strftime(ATTEMPT_TIME)
        attempt = f"{stamp}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        base = self._base(step, identity)
        self._each_file(lambda relative: self._upload(local / relative, f"{base}{attempt}/{relative}"),
                        sorted(meta["checksums"]))
        if self.status(step, identity).finished:
            self._delete_prefix(f"{base}{attempt}/")
            log.info("%s is already in place (made by another run); discarded this run's copy", self.uri(step, identity))
            return
        meta["attempt"] = attempt
        self._call("put_object", Bucket=self.bucket, Key=base + META_FILE,
                   Body=(json.dumps(meta, indent=2, sort_keys=True) + "\n").encode(),
                   ContentType="application/json")
        winner = (self.read_meta(step, identity) or {}).get("attempt")
        if winner != attempt:
            self._delete_prefix(f"{base}{attempt}/")
            log.info("%s was committed by another run meanwhile; discarded this run's copy", self.uri(step, identity))
            return
        # Another writer's attempt may still be on its way to its own meta.json: only attempts
        # older than the grace period are left over for certain.
        for prefix in self._stale_attempts(base, keep=attempt):
            self._delete_prefix(prefix)

    def _stale_attempts(self, base: str, keep: str) -> list[str]:
        """Return the attempt prefixes under ``base`` other than ``keep`` begun over STALE_ATTEMPT_S ago."""
        now = datetime.now(timezone.utc)
        stale = []
        for prefix in self._list(base, delimiter="/")[1]:
            name = prefix[len(base):].rstrip("/")
            try:
                begun = datetime.strptime(name.split("-", 1)[0], ATTEMPT_TIME).replace(tzinfo=timezone.utc)
            except ValueError:
                begun = datetime.min.replace(tzinfo=timezone.utc)  # not an attempt of ours: left over
            if name != keep and (now - begun).total_seconds() > STALE_ATTEMPT_S:
                stale.append(prefix)
        return stale

    @staticmethod
    def _each_file(action: Callable[[str], None], names: list[str]) -> None:
        """Run ``action`` on every file name, several at a time (each transfer waits on the network)."""
        with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
            for future in [pool.submit(action, name) for name in names]:
                future.result()

    def _upload(self, path: Path, key: str) -> None:
        with self._explained():
            self.client.upload_file(str(path), self.bucket, key, Config=self._transfer)

    def _download(self, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._explained():
            self.client.download_file(self.bucket, key, str(path), Config=self._transfer)

    # -- reading ----------------------------------------------------------------------------------

    def fetch(self, step: str, identity: str) -> Path:
        """Return a local copy of the finished artifact, downloaded once per id and sha256-checked."""
        final = self.cache / "artifacts" / step / identity
        with locks.exclusive_lock(final.parent / f".{identity}.lock"):
            meta = self.read_meta(step, identity)
            if meta is None:
                raise StoreError(f"{self.uri(step, identity)} has no {META_FILE}: it is not a finished artifact.")
            cached = read_meta(final)
            if (cached and cached.get("attempt") == meta.get("attempt")
                    and directory_problem(final, identity) is None):
                return final
            remove_leftovers(final)
            if final.exists():
                discard_directory(final)
            with atomic_directory(final) as staging:
                def download_checked(relative: str) -> None:
                    path = staging / relative
                    self._download(f"{self._base(step, identity)}{meta['attempt']}/{relative}", path)
                    if sha256_of(path) != meta["checksums"][relative]["sha256"]:
                        raise StoreError(f"{self.uri(step, identity)}/{relative} does not match the sha256 its "
                                         f"{META_FILE} recorded: run lenet-pipeline verify, then remove the artifact.")

                self._each_file(download_checked, sorted(meta["checksums"]))
                write_json(staging / META_FILE, meta)
            return final

    def verify(self, step: str, identity: str) -> list[str]:
        """Return one line per missing, altered or unrecorded object of the artifact (re-hashed)."""
        label = self.uri(step, identity)
        meta = self.read_meta(step, identity)
        if meta is None:
            return [f"{label}: no readable {META_FILE}, so not a finished artifact (remove it; a run remakes it)"]
        if meta.get("artifact_id") != identity or not meta.get("attempt"):
            return [f"{label}: {META_FILE} names artifact {meta.get('artifact_id')!r}, attempt "
                    f"{meta.get('attempt')!r} (remove it; a run remakes it)"]
        attempt = meta["attempt"]
        base = self._base(step, identity)
        present = self._attempt_sizes(step, identity, attempt)
        problems = verify_files(label, meta.get("checksums"), present,
                                lambda relative: self._sha256_of_object(f"{base}{attempt}/{relative}"))
        for prefix in self._stale_attempts(base, keep=attempt):
            problems.append(f"s3://{self.bucket}/{prefix}: an attempt that was not committed (the committed one "
                            f"is {attempt}); lenet-pipeline remove and a rerun clear it")
        return problems

    def _sha256_of_object(self, key: str) -> str:
        digest = hashlib.sha256()
        body = self._call("get_object", Bucket=self.bucket, Key=key)["Body"]
        for chunk in iter(lambda: body.read(1 << 20), b""):
            digest.update(chunk)
        return digest.hexdigest()

    def ids(self, step: str) -> list[str]:
        """Return the ids under a step that have objects, finished or not (work prefixes excluded)."""
        prefixes = self._list(f"{self.prefix}{step}/", delimiter="/")[1]
        names = [prefix[len(f"{self.prefix}{step}/"):].rstrip("/") for prefix in prefixes]
        return sorted(name for name in names if name and not name.endswith(WORK_SUFFIX))

    def remove(self, step: str, identity: str) -> list[str]:
        """Delete the artifact's objects and its work prefix; return what was removed."""
        removed = []
        for prefix in (self._base(step, identity), self._work_prefix(step, identity)):
            if self._delete_prefix(prefix):
                removed.append(f"s3://{self.bucket}/{prefix}".rstrip("/"))
        shutil.rmtree(self.work_dir(step, identity), ignore_errors=True)
        return removed

    # -- work in progress (Train's checkpoints) ---------------------------------------------------

    def _work_prefix(self, step: str, identity: str) -> str:
        return f"{self.prefix}{step}/{identity}{WORK_SUFFIX}/"

    def work_dir(self, step: str, identity: str) -> Path:
        """Return this host's local work directory for the artifact (mirrored to the bucket)."""
        return self.cache / "work" / step / f"{identity}{WORK_SUFFIX}"

    def pull_work(self, step: str, identity: str, newest: Callable[[list[str]], object]) -> bool:
        """Replace the local work directory with the bucket's when ``newest`` ranks the bucket's higher.

        ``newest`` takes a list of relative file names and returns something comparable (e.g. the
        last complete checkpoint's epoch). Returns whether anything was downloaded.
        """
        prefix = self._work_prefix(step, identity)
        remote = {key[len(prefix):]: size for key, size in self._list(prefix)[0].items()}
        local_dir = self.work_dir(step, identity)
        local = [path.relative_to(local_dir).as_posix() for path in local_dir.rglob("*") if path.is_file()] \
            if local_dir.is_dir() else []
        if not remote or newest(list(remote)) <= newest(local):
            return False
        with atomic_directory(local_dir.parent / f"{local_dir.name}.pulled") as staging:
            for relative in sorted(remote):
                self._download(prefix + relative, staging / relative)
        shutil.rmtree(local_dir, ignore_errors=True)
        os.rename(local_dir.parent / f"{local_dir.name}.pulled", local_dir)
        log.info("Fetched the work in progress of %s from s3://%s/%s", self.uri(step, identity), self.bucket, prefix)
        return True

    def push_work(self, step: str, identity: str, last: Callable[[str], bool] = lambda name: False) -> None:
        """Mirror the local work directory to the bucket: new or changed files (``last`` ones at the end), then deletions."""
        prefix = self._work_prefix(step, identity)
        local_dir = self.work_dir(step, identity)
        remote = {key[len(prefix):]: size for key, size in self._list(prefix)[0].items()}
        local = {path.relative_to(local_dir).as_posix(): path for path in local_dir.rglob("*") if path.is_file()}
        changed = [name for name, path in local.items() if remote.get(name) != path.stat().st_size or last(name)]
        for name in sorted(changed, key=lambda name: (last(name), name)):
            self._upload(local[name], prefix + name)
        self._delete_keys([prefix + name for name in sorted(set(remote) - set(local))])

    def drop_work(self, step: str, identity: str) -> None:
        """Remove the work directory here and in the bucket."""
        self._delete_prefix(self._work_prefix(step, identity))
        shutil.rmtree(self.work_dir(step, identity), ignore_errors=True)

    # -- records ----------------------------------------------------------------------------------

    def log_dir(self) -> Path:
        """Return the local directory for this host's logs and job locks of runs on this store."""
        return self.cache / "logs"

    def put_json(self, relative: str, data) -> str:
        """Upload a JSON record under the root (e.g. ``runs/<name>.json``); return its URI."""
        key = f"{self.prefix}{relative}"
        self._call("put_object", Bucket=self.bucket, Key=key,
                   Body=(json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), ContentType="application/json")
        return f"s3://{self.bucket}/{key}"
