"""Artifacts under an S3 prefix, through boto3: files stored once under their sha256, ``meta.json`` last.

Layout, for an outputs root ``s3://BUCKET/PREFIX``::

    PREFIX/<step>/<id>/meta.json                     the manifest: every file's name, size and sha256
    PREFIX/<step>/<id>/data/<sha256>                 each file's bytes, under their hash
    PREFIX/<step>/<id>.incomplete/data/<sha256>      Train's checkpoint files and events
    PREFIX/<step>/<id>.incomplete/manifests/<n>.json one manifest per checkpoint (n = its epoch)

Writers only add. A commit uploads the files under their hashes (an upload of the same bytes to
the same key changes nothing, so two writers of one id never conflict), then writes ``meta.json``.
Where the store supports conditional writes (``If-None-Match: *``: AWS S3, MinIO, Ceph), the first
``meta.json`` wins and a later writer adopts it; where it does not (it answers 501, as OpenStack
Swift's s3api does), the last one wins. Either way every ``meta.json`` names files that are all
there, since no commit deletes anything. Files that no manifest names (a race's loser, a writer
that died before its ``meta.json``) are garbage: ``garbage()`` lists them, ``collect()`` removes
them, aged by the store's own ``LastModified`` against its own clock (the ``Date`` it answers
with), never by a client's clock.

A reader sees the artifact only once ``meta.json`` names it and every file it lists is there with
its recorded size. Inputs are fetched into a local cache keyed by artifact id, each file checked
against its sha256. Locks are local to a host (exactly-once across hosts is ``luigid``'s job).
Artifacts written before content addressing (``meta.json`` naming an ``attempt``, files under
``<id>/<attempt>/``) are still read, verified and copied.
"""

import base64
import contextlib
import email.utils
import hashlib
import io
import json
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from pipeline import locks
from pipeline.artifacts import (META_FILE, atomic_directory, completeness_problem, directory_problem,
                                discard_directory, file_checksums, full_disk_error, is_full_disk, read_meta,
                                remove_leftovers, staging_name, tree_bytes, verify_files, write_json)
from pipeline.errors import PipelineError
from pipeline.storage import (ABSENT, FINISHED, KEPT_CHECKPOINTS, WORK_SUFFIX, ArtifactLocks, ArtifactStatus,
                              Garbage, s3_cache_dir)

log = logging.getLogger(__name__)

# Files are sent four at a time, each in 8 MiB parts, four parts at a time.
PART_BYTES = 8 << 20
TRANSFER_THREADS = 4
DATA_DIR = "data"
MANIFESTS_DIR = "manifests"
RETRY_ATTEMPTS = 5


class StoreError(PipelineError):
    """The object store cannot be used: unreachable, credentials refused, no such bucket, throttled."""


def client_config():
    """Return the botocore configuration the pipeline's S3 clients use.

    Checksums only where the API requires them: stores that implement S3 without the 2025
    default integrity headers (OpenStack Swift, older MinIO and Ceph) reject or ignore them.
    Short connection timeouts, so an unreachable endpoint fails in seconds; botocore's adaptive
    retry mode, which retries throttling (SlowDown, 503) and transient errors with back-off and
    slows this client's request rate while the store throttles.
    """
    from botocore.config import Config

    return Config(request_checksum_calculation="when_required", response_checksum_validation="when_required",
                  connect_timeout=5, read_timeout=60, retries={"max_attempts": RETRY_ATTEMPTS, "mode": "adaptive"},
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


def check_endpoint(endpoint: str | None, setting: str) -> None:
    """Raise StoreError unless ``endpoint`` (from ``setting``) is empty or an http(s) URL with a host."""
    from urllib.parse import urlsplit

    if not endpoint:
        return
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StoreError(f"The object store endpoint {endpoint!r} ({setting}) is not an http(s) URL: write it "
                         "with its scheme, for example http://127.0.0.1:9000 or https://s3.example.com.")


def checked_client(build: Callable[[], object], endpoint: str | None, setting: str):
    """Return ``prepare_client(build())`` once ``endpoint`` (else AWS_ENDPOINT_URL) is checked; bad settings are StoreErrors.

    ``setting`` names where ``endpoint`` came from, for the message.
    """
    if not endpoint:
        endpoint, setting = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"), \
            "AWS_ENDPOINT_URL"
    check_endpoint(endpoint, setting)
    try:
        return prepare_client(build())
    except ValueError as error:  # botocore's "Invalid endpoint", an unknown region name
        raise StoreError(f"Cannot make an S3 client: {error}. Check AWS_ENDPOINT_URL and AWS_DEFAULT_REGION "
                         "(or [s3] endpoint_url and region_name).") from error


def make_client(options: dict | None = None):
    """Return a boto3 S3 client; ``options`` (endpoint_url, region_name, keys) else the AWS variables."""
    import boto3

    options = options or {}
    return checked_client(lambda: boto3.client("s3", config=client_config(), **options),
                          options.get("endpoint_url"), "endpoint_url")


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


def _error_code(error) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _manifest_body(data) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


class _HashingWriter(io.RawIOBase):
    """A file that hashes what is written to it. Not seekable, so boto3 writes the parts in order."""

    def __init__(self, handle):
        super().__init__()
        self.handle, self.digest = handle, hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.digest.update(data)
        return self.handle.write(data)


class ObjectVanished(StoreError):
    """An object a manifest names was not there when it was downloaded."""


class _Unusable(Exception):
    """A checkpoint in the bucket that does not check out (a file missing, short or altered)."""


class S3Store(ArtifactLocks):
    """An outputs root ``s3://BUCKET/PREFIX``; ``cache_dir`` holds fetched inputs, staging and work."""

    def __init__(self, uri: str, client, cache_dir: Path):
        self.bucket, self.prefix = parse_uri(uri)
        self.client = client
        self.root_uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.cache = s3_cache_dir(self.root_uri, cache_dir)
        self._transfer = transfer_config()
        self._conditional_writes = True  # until the store answers that it has none
        self._sent: set[tuple[str, str]] = set()  # (work prefix, sha256) this process has uploaded

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
                             "and AWS_SECRET_ACCESS_KEY in the environment, or use an AWS profile "
                             "(AWS_PROFILE); keep them out of the repository's luigi.cfg.") from error
        except EndpointConnectionError as error:
            raise StoreError(f"Cannot reach the object store {self._endpoint()} for {self.root_uri}: start it, "
                             "or fix AWS_ENDPOINT_URL or [s3] endpoint_url.") from error
        except BotoCoreError as error:
            raise StoreError(f"The object store {self._endpoint()} failed for {self.root_uri}: {error}") from error

    def _explain(self, error) -> Exception:
        """Return the StoreError a user can act on for a ClientError; the error itself for the expected ones."""
        code = _error_code(error)
        if code == "NoSuchBucket":
            return StoreError(f"The bucket {self.bucket!r} does not exist at {self._endpoint()}: create it "
                              f"(aws s3 mb s3://{self.bucket}) or fix [paths] outputs (--paths-outputs).")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "InvalidToken",
                    "ExpiredToken"):
            return StoreError(f"{self._endpoint()} refused the credentials for bucket {self.bucket!r} ({code}): "
                              "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the AWS profile) in the "
                              "environment.")
        if code == "RequestTimeTooSkewed":
            return StoreError(f"{self._endpoint()} refused the requests for {self.root_uri}: this host's clock "
                              "differs too much from the store's (RequestTimeTooSkewed). Synchronise it (NTP: "
                              "timedatectl set-ntp true, or chrony), then run again.")
        if code in ("SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "503", "TooManyRequests"):
            return StoreError(f"{self._endpoint()} kept throttling requests for {self.root_uri} ({code}) after "
                              f"{RETRY_ATTEMPTS} attempts with back-off: run fewer workers at once, or again later.")
        if self._is_missing(error) or code in ("PreconditionFailed", "412", "NotImplemented", "501",
                                               "ConditionalRequestConflict", "409"):
            return error  # expected answers: the callers decide
        message = error.response.get("Error", {}).get("Message", "")
        return StoreError(f"The object store {self._endpoint()} refused a request for {self.root_uri}: {code} "
                          f"{message}".rstrip())

    @staticmethod
    def _is_missing(error) -> bool:
        return _error_code(error) in ("NoSuchKey", "404", "NotFound")

    # -- keys and listings ------------------------------------------------------------------------

    def _base(self, step: str, identity: str) -> str:
        return f"{self.prefix}{step}/{identity}/"

    def uri(self, step: str, identity: str) -> str:
        """Return where the artifact is, for messages and records."""
        return f"s3://{self.bucket}/{self._base(step, identity)}".rstrip("/")

    def describe(self) -> str:
        return self.root_uri

    def _key_uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _pages(self, **kwargs):
        """Yield every page of a ListObjectsV2 answer."""
        token = None
        while True:
            page = self._call("list_objects_v2", Bucket=self.bucket, **kwargs,
                              **({"ContinuationToken": token} if token else {}))
            yield page
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    def _list_objects(self, prefix: str) -> dict[str, dict]:
        """Return {key: listing entry (Size, LastModified)} of every object below ``prefix``."""
        return {item["Key"]: item for page in self._pages(Prefix=prefix) for item in page.get("Contents", [])}

    def _list(self, prefix: str) -> dict[str, int]:
        """Return {key: size} below ``prefix``."""
        return {key: item["Size"] for key, item in self._list_objects(prefix).items()}

    def _subfolders(self, prefix: str) -> list[str]:
        """Return the names directly below ``prefix`` that hold objects (one level, every page)."""
        names = [item["Prefix"][len(prefix):].rstrip("/") for page in self._pages(Prefix=prefix, Delimiter="/")
                 for item in page.get("CommonPrefixes", [])]
        return sorted(name for name in names if name)

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = keys[start:start + 1000]
            self._call("delete_objects", Bucket=self.bucket,
                       Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True})

    def _delete_prefix(self, prefix: str) -> int:
        keys = sorted(self._list(prefix))
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

    def _object_size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return self._call("head_object", Bucket=self.bucket, Key=key)["ContentLength"]
        except ClientError as error:
            if self._is_missing(error):
                return None
            raise

    def store_time(self) -> datetime:
        """Return the store's own clock: the ``Date`` it answers a listing with.

        ``Date`` has whole seconds, ``LastModified`` finer ones: the end of that second is taken,
        so that what was written before the question counts as older.
        """
        answer = self._call("list_objects_v2", Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        date = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        if not date:
            raise StoreError(f"{self._endpoint()} answers without a Date header, so the age of objects in "
                             f"{self.root_uri} cannot be told by the store's clock: gc needs one.")
        return email.utils.parsedate_to_datetime(date) + timedelta(seconds=1)

    # -- status -----------------------------------------------------------------------------------

    def read_meta(self, step: str, identity: str) -> dict | None:
        return self._get_json(self._base(step, identity) + META_FILE)

    def _file_key(self, base: str, meta: dict, relative: str) -> str:
        """Return the key holding a file ``meta`` lists (under its sha256, or its legacy attempt prefix)."""
        if meta.get("attempt"):
            return f"{base}{meta['attempt']}/{relative}"
        return f"{base}{DATA_DIR}/{meta['checksums'][relative]['sha256']}"

    def _referenced(self, base: str, meta: dict | None) -> dict[str, str]:
        """Return {key: relative name} of the files ``meta`` lists."""
        if not meta or not isinstance(meta.get("checksums"), dict):
            return {}
        try:
            return {self._file_key(base, meta, relative): relative for relative in meta["checksums"]}
        except (KeyError, TypeError):
            return {}

    def _present_sizes(self, base: str, meta: dict) -> dict[str, int]:
        """Return {relative: bytes} of the files ``meta`` lists that are in the store."""
        listing = self._list(base)
        sizes = {}
        for key, relative in self._referenced(base, meta).items():
            size = listing.get(key)
            if size != (meta["checksums"][relative] or {}).get("bytes"):
                # A listing may lag behind the objects just written (Swift updates container
                # listings asynchronously): what the listing lacks is asked of the object itself.
                size = self._object_size(key)
            if size is not None:
                sizes[relative] = size
        return sizes

    def status(self, step: str, identity: str) -> ArtifactStatus:
        """Return whether the artifact is finished: ``meta.json`` names it and every file it lists has its size."""
        meta = self.read_meta(step, identity)
        if meta is None:
            return ABSENT
        problem = completeness_problem(meta, identity, self._present_sizes(self._base(step, identity), meta))
        return FINISHED if problem is None else ArtifactStatus(False, problem)

    # -- writing ----------------------------------------------------------------------------------

    def _lock_path(self, step: str, identity: str) -> Path:
        # This host's: runs on one host take turns; across hosts, luigid keeps a task to one worker.
        return self.cache / "locks" / step / f".{identity}.lock"

    def discard_unfinished(self, step: str, identity: str) -> None:
        """Remove this host's staging leftovers. Nothing in the bucket: a broken ``meta.json`` is replaced by the commit."""
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

    def _upload_hashed(self, files: dict[str, Path], data_prefix: str, checksums: dict) -> None:
        """Upload each file under ``data_prefix<sha256>``, once per distinct content."""
        by_hash = {checksums[relative]["sha256"]: path for relative, path in sorted(files.items())}
        self._each_file(lambda digest: self._upload(by_hash[digest], data_prefix + digest), sorted(by_hash))

    def commit(self, step: str, identity: str, local: Path) -> None:
        """Upload a finished local directory (its meta.json listing every file) as the artifact ``(step, id)``.

        Deletes nothing. Every file goes up under its sha256, even when an object of that hash is
        already there, so that its ``LastModified`` is fresh and ``gc`` leaves it alone for its
        grace period; then ``meta.json``, conditionally where the store can.
        """
        meta = json.loads((local / META_FILE).read_bytes())
        meta.pop("attempt", None)
        base = self._base(step, identity)
        self._upload_hashed({relative: local / relative for relative in meta["checksums"]}, f"{base}{DATA_DIR}/",
                            meta["checksums"])
        if self._put_first(base + META_FILE, _manifest_body(meta), lambda: self.status(step, identity).finished):
            return
        log.info("%s was committed by another run meanwhile; using that one (this run's files are left for gc)",
                 self.uri(step, identity))

    def _put_first(self, key: str, body: bytes, existing_is_good: Callable[[], bool]) -> bool:
        """Write a manifest unless a good one is there already; return whether ours was written.

        With conditional writes the first writer wins and a later one adopts its manifest (unless
        that one is broken: then it is replaced). Without them (501), the last writer wins.
        """
        from botocore.exceptions import ClientError

        if self._conditional_writes:
            try:
                self._call("put_object", Bucket=self.bucket, Key=key, Body=body, ContentType="application/json",
                           IfNoneMatch="*")
                return True
            except ClientError as error:
                code = _error_code(error)
                if code in ("NotImplemented", "501"):
                    self._conditional_writes = False
                elif code not in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                    raise
                elif existing_is_good():
                    return False
        self._call("put_object", Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        return True

    @staticmethod
    def _each_file(action: Callable[[str], None], names: list[str]) -> None:
        """Run ``action`` on every file name, several at a time (each transfer waits on the network)."""
        with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
            for future in [pool.submit(action, name) for name in names]:
                future.result()

    def _upload(self, path: Path, key: str) -> None:
        with self._explained():
            self.client.upload_file(str(path), self.bucket, key, Config=self._transfer)

    def _download(self, key: str, path: Path) -> str:
        """Download ``key`` to ``path``; return the sha256 of its bytes, computed as they arrive."""
        from botocore.exceptions import ClientError

        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._explained(), open(path, "wb") as handle:
                writer = _HashingWriter(handle)
                self.client.download_fileobj(self.bucket, key, writer, Config=self._transfer)
                return writer.digest.hexdigest()
        except ClientError as error:
            if self._is_missing(error):
                raise ObjectVanished(f"{self._key_uri(key)} disappeared while it was being fetched (removed by "
                                 "lenet-pipeline remove or gc, or replaced by another run's commit): run again; "
                                 "if it recurs, run lenet-pipeline verify.") from error
            raise

    # -- reading ----------------------------------------------------------------------------------

    def fetch(self, step: str, identity: str) -> Path:
        """Return a local copy of the finished artifact, downloaded once per id and sha256-checked."""
        final = self.cache / "artifacts" / step / identity
        with locks.exclusive_lock(final.parent / f".{identity}.lock"):
            meta = self.read_meta(step, identity)
            if meta is None:
                raise StoreError(f"{self.uri(step, identity)} has no {META_FILE}: it is not a finished artifact.")
            cached = read_meta(final)
            if (cached and cached.get("checksums") == meta.get("checksums")
                    and directory_problem(final, identity) is None):
                return final
            remove_leftovers(final)
            if final.exists():
                discard_directory(final)
            base = self._base(step, identity)
            with atomic_directory(final) as staging:
                def download_checked(relative: str) -> None:
                    if self._download(self._file_key(base, meta, relative), staging / relative) \
                            != meta["checksums"][relative]["sha256"]:
                        raise StoreError(f"{self.uri(step, identity)}/{relative} does not match the sha256 its "
                                         f"{META_FILE} recorded: run lenet-pipeline verify, then remove the artifact.")

                self._each_file(download_checked, sorted(meta["checksums"]))
                write_json(staging / META_FILE, meta)
            return final

    def verify(self, step: str, identity: str) -> list[str]:
        """Return one line per missing, altered or unrecorded file of the artifact (re-hashed)."""
        label = self.uri(step, identity)
        meta = self.read_meta(step, identity)
        if meta is None:
            return [f"{label}: no readable {META_FILE}, so not a finished artifact (remove it; a run remakes it)"]
        if meta.get("artifact_id") != identity:
            return [f"{label}: {META_FILE} names artifact {meta.get('artifact_id')!r} (remove it; a run remakes it)"]
        base = self._base(step, identity)
        present = self._present_sizes(base, meta)
        key_of = {relative: key for key, relative in self._referenced(base, meta).items()}
        return verify_files(label, meta.get("checksums"), present,
                            lambda relative: self._sha256_of_object(key_of[relative]))

    def _sha256_of_object(self, key: str) -> str:
        digest = hashlib.sha256()
        body = self._call("get_object", Bucket=self.bucket, Key=key)["Body"]
        for chunk in iter(lambda: body.read(1 << 20), b""):
            digest.update(chunk)
        return digest.hexdigest()

    def ids(self, step: str) -> list[str]:
        """Return the ids under a step that have objects, finished or not (work prefixes excluded)."""
        return [name for name in self._subfolders(f"{self.prefix}{step}/") if not name.endswith(WORK_SUFFIX)]

    def remove(self, step: str, identity: str) -> list[str]:
        """Delete the artifact's objects and its work prefix; return what was removed."""
        removed = []
        for prefix in (self._base(step, identity), self._work_prefix(step, identity)):
            if self._delete_prefix(prefix):
                removed.append(self._key_uri(prefix).rstrip("/"))
        shutil.rmtree(self.work_dir(step, identity), ignore_errors=True)
        return removed

    # -- garbage ----------------------------------------------------------------------------------

    def garbage(self, steps: list[str], older_than_s: float) -> list[Garbage]:
        """Return the objects no manifest references whose ``LastModified`` is over ``older_than_s`` old.

        Age is the store's clock minus the store's timestamp. Under an artifact: what its
        ``meta.json`` does not list (``meta.json`` itself always stays). Under a work prefix: the
        files of checkpoints other than the newest KEPT_CHECKPOINTS, or everything once the
        artifact is finished.
        """
        cutoff = self.store_time() - timedelta(seconds=older_than_s)
        found = []
        for step in steps:
            for name in self._subfolders(f"{self.prefix}{step}/"):
                identity = name.removesuffix(WORK_SUFFIX)
                prefix = f"{self.prefix}{step}/{name}/"
                objects = self._list_objects(prefix)
                if name.endswith(WORK_SUFFIX):
                    kept, reason = self._work_referenced(step, identity, objects)
                else:
                    meta = self.read_meta(step, identity)
                    kept = {prefix + META_FILE, *self._referenced(prefix, meta)}
                    reason = f"not listed by its {META_FILE}" if meta else f"no {META_FILE} (a run that never committed)"
                found += [Garbage(self._key_uri(key), item["Size"], reason) for key, item in sorted(objects.items())
                          if key not in kept and item["LastModified"] <= cutoff]
        return found

    def _work_referenced(self, step: str, identity: str, objects: dict) -> tuple[set[str], str]:
        """Return (the work keys to keep, why the others are garbage) of a work prefix."""
        if self.status(step, identity).finished:
            return set(), "the work of a finished artifact"
        prefix = self._work_prefix(step, identity)
        kept = set()
        for key in self._manifest_keys(prefix, objects)[:KEPT_CHECKPOINTS]:
            manifest = self._get_json(key) or {}
            kept |= {key, *(f"{prefix}{DATA_DIR}/{entry['sha256']}" for entry in (manifest.get("files") or {}).values())}
        return kept, f"not in the newest {KEPT_CHECKPOINTS} checkpoints"

    def collect(self, items: list[Garbage]) -> list[Garbage]:
        """Delete what ``garbage`` found; return it."""
        start = len(f"s3://{self.bucket}/")
        self._delete_keys([item.location[start:] for item in items])
        return items

    # -- work in progress (Train's checkpoints) ---------------------------------------------------

    def _work_prefix(self, step: str, identity: str) -> str:
        return f"{self.prefix}{step}/{identity}{WORK_SUFFIX}/"

    def work_dir(self, step: str, identity: str) -> Path:
        """Return this host's local work directory for the artifact (mirrored to the bucket)."""
        return self.cache / "work" / step / f"{identity}{WORK_SUFFIX}"

    def _manifest_keys(self, prefix: str, objects: dict | None = None) -> list[str]:
        """Return the checkpoint manifests under a work prefix, newest first."""
        keys = objects if objects is not None else self._list(f"{prefix}{MANIFESTS_DIR}/")
        found = []
        for key in keys:
            name = key[len(f"{prefix}{MANIFESTS_DIR}/"):]
            if key.startswith(f"{prefix}{MANIFESTS_DIR}/") and name.endswith(".json") and name[:-5].isdigit():
                found.append((int(name[:-5]), key))
        return [key for _, key in sorted(found, reverse=True)]

    def push_work(self, step: str, identity: str, newest: Callable[[list[str]], int]) -> None:
        """Send the local work directory: its files under their sha256, then a manifest for its newest checkpoint.

        ``newest`` takes relative file names and returns the newest complete checkpoint's number
        (the manifest's name). Adds only: no file another writer may have sent is deleted.
        """
        local_dir = self.work_dir(step, identity)
        checksums = file_checksums(local_dir)
        prefix = self._work_prefix(step, identity)
        unsent = {relative: local_dir / relative for relative, entry in checksums.items()
                  if (prefix, entry["sha256"]) not in self._sent}
        self._upload_hashed(unsent, f"{prefix}{DATA_DIR}/", checksums)
        self._sent |= {(prefix, entry["sha256"]) for entry in checksums.values()}
        number = newest(list(checksums))
        self._call("put_object", Bucket=self.bucket, Key=f"{prefix}{MANIFESTS_DIR}/{number:06d}.json",
                   Body=_manifest_body({"artifact_id": identity, "checkpoint": number, "files": checksums}),
                   ContentType="application/json")

    def pull_work(self, step: str, identity: str, newest: Callable[[list[str]], int]) -> bool:
        """Replace the local work directory with the bucket's newest checkpoint that checks out, if newer.

        A checkpoint counts only when every file its manifest lists downloads with its size and
        sha256; one that does not is skipped for the one before it, with one warning. Returns
        whether anything was fetched.
        """
        prefix = self._work_prefix(step, identity)
        local_dir = self.work_dir(step, identity)
        local = [path.relative_to(local_dir).as_posix() for path in local_dir.rglob("*") if path.is_file()] \
            if local_dir.is_dir() else []
        here = newest(local)
        skipped = []
        for key in self._manifest_keys(prefix):
            files = (self._get_json(key) or {}).get("files")
            if not isinstance(files, dict):
                skipped.append(f"{self._key_uri(key)} is unreadable")
                continue
            if newest(list(files)) <= here:
                break  # this host's own checkpoint is as new
            pulled = local_dir.parent / f"{local_dir.name}.pulled"
            try:
                remove_leftovers(pulled)
                shutil.rmtree(pulled, ignore_errors=True)
                with atomic_directory(pulled) as staging:
                    self._download_checked(prefix, files, staging)
            except _Unusable as why:
                skipped.append(str(why))
                continue
            shutil.rmtree(local_dir, ignore_errors=True)
            os.rename(pulled, local_dir)
            self._warn_skipped(skipped, f"resuming from checkpoint {newest(list(files))} instead")
            log.info("Fetched the work in progress of %s from %s", self.uri(step, identity), self._key_uri(key))
            return True
        self._warn_skipped(skipped, "resuming from this host's own checkpoint" if here >= 0 else "starting over")
        return False

    def _download_checked(self, prefix: str, files: dict, staging: Path) -> None:
        """Download the files a checkpoint manifest lists into ``staging``; raise _Unusable if one does not check out."""
        for relative, entry in sorted(files.items()):
            key = f"{prefix}{DATA_DIR}/{entry['sha256']}"
            path = staging / relative
            try:
                digest = self._download(key, path)
            except ObjectVanished:
                raise _Unusable(f"{self._key_uri(key)} ({relative}) is missing") from None
            if path.stat().st_size != entry["bytes"] or digest != entry["sha256"]:
                raise _Unusable(f"{self._key_uri(key)} ({relative}) does not match its manifest")

    @staticmethod
    def _warn_skipped(skipped: list[str], outcome: str) -> None:
        if skipped:
            log.warning("Skipped %d checkpoint(s) in the bucket that do not check out (%s); %s",
                        len(skipped), "; ".join(skipped), outcome)

    def drop_work(self, step: str, identity: str) -> None:
        """Remove the work directory here, and in the bucket once the artifact is finished (nobody needs it then)."""
        if self.status(step, identity).finished:
            self._delete_prefix(self._work_prefix(step, identity))
        shutil.rmtree(self.work_dir(step, identity), ignore_errors=True)

    # -- records ----------------------------------------------------------------------------------

    def log_dir(self) -> Path:
        """Return the local directory for this host's logs and job locks of runs on this store."""
        return self.cache / "logs"

    def put_json(self, relative: str, data) -> str:
        """Upload a JSON record under the root (e.g. ``runs/<name>.json``); return its URI."""
        key = f"{self.prefix}{relative}"
        self._call("put_object", Bucket=self.bucket, Key=key, Body=_manifest_body(data),
                   ContentType="application/json")
        return self._key_uri(key)
