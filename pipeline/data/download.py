"""Fetching the four IDX files from mirrors, a URL prefix or a local directory, verified."""

import functools
import hashlib
import http.client
import logging
import shutil
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from pipeline.artifacts import sha256_of
from pipeline.data.datasets import FILE_NAMES, DatasetInfo, FileFingerprint
from pipeline.errors import ConfigError, DataError, SourceError

log = logging.getLogger(__name__)

ATTEMPTS_PER_SOURCE = 3
RETRY_DELAY_S = 0.5
TIMEOUT_S = 30
CHUNK_BYTES = 1 << 20

ProgressCallback = Callable[[str, int, int | None], None]


class TransientError(Exception):
    """A failure worth retrying against the same source (timeout, reset, 5xx, short body)."""


def resolve_sources(dataset: DatasetInfo, source: str) -> list[str]:
    """Return the URL prefixes or local directory to try, in order, for ``dataset``."""
    source = source.strip()
    if not source:
        if not dataset.mirrors:
            raise ConfigError(
                f"dataset {dataset.name!r} has no public mirror: set [data] source "
                "(--data-source) to a URL prefix or a directory holding the four .gz files."
            )
        return list(dataset.mirrors)
    if source.startswith(("http://", "https://")):
        return [source if source.endswith("/") else source + "/"]
    if "://" in source:
        raise ConfigError(f"source {source!r}: only http(s) URLs and local directories work.")
    directory = Path(source).expanduser()
    if not directory.is_dir():
        raise ConfigError(
            f"source {source!r} is neither an http(s) URL nor an existing directory; "
            "point --data-source at the folder holding the four .gz files."
        )
    return [str(directory.resolve())]


def local_file_checksums(directory: str) -> dict[str, str]:
    """Return {file name: sha256 of the .gz} for the four files of a local source directory.

    What identifies a ``custom`` data set: its content, not its path, so files replaced in place
    give new artifacts and an unchanged copy elsewhere gives the same ones.
    """
    checksums = {}
    for name in FILE_NAMES.values():
        path = Path(directory) / name
        try:
            checksums[name] = _cached_sha256(str(path), *_stat_key(path))
        except FileNotFoundError:
            raise ConfigError(f"{path} does not exist: the source directory must hold all four .gz files "
                              f"({', '.join(FILE_NAMES.values())}).") from None
    return checksums


def _stat_key(path: Path) -> tuple[int, int, int]:
    """Return what changes when a file is rewritten: inode, size and modification time."""
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=64)
def _cached_sha256(path: str, inode: int, size: int, mtime_ns: int) -> str:
    """Return a file's sha256, computed once per process for an unchanged file."""
    return sha256_of(Path(path))


def _fetch_url(url: str, target: Path, on_progress: ProgressCallback | None) -> None:
    """Stream ``url`` to ``target``, raising TransientError for what a retry may cure."""
    request = urllib.request.Request(url, headers={"User-Agent": "lenet-luigi-pipeline"})
    context = ssl.create_default_context()
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as response:
            total = response.headers.get("Content-Length")
            total = int(total) if total else None
            received = 0
            with open(target, "wb") as out:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    received += len(chunk)
                    if on_progress:
                        on_progress(target.name, received, total)
    except urllib.error.HTTPError as error:
        if error.code >= 500 or error.code == 429:
            raise TransientError(f"HTTP {error.code}") from None
        raise SourceError(f"HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, ssl.SSLError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise SourceError(f"TLS certificate rejected: {reason}") from None
        raise TransientError(f"{type(reason).__name__}: {reason}") from None
    except http.client.HTTPException as error:
        # IncompleteRead (a chunked body cut short), BadStatusLine, RemoteDisconnected and kin.
        raise TransientError(f"{type(error).__name__}: {error!r}") from None
    if total is not None and received != total:
        raise TransientError(f"connection closed after {received} of {total} bytes")


def _fetch_with_retries(url: str, target: Path, on_progress: ProgressCallback | None) -> None:
    """Fetch ``url`` into ``target``, retrying transient failures with a growing delay."""
    for attempt in range(1, ATTEMPTS_PER_SOURCE + 1):
        try:
            _fetch_url(url, target, on_progress)
            return
        except TransientError as error:
            if attempt == ATTEMPTS_PER_SOURCE:
                raise SourceError(f"{error} (after {attempt} attempts)") from None
            log.warning("Download of %s failed (%s); retry %d", url, error, attempt)
            time.sleep(RETRY_DELAY_S * attempt)


def verify_file(path: Path, kind: str, fingerprint: FileFingerprint | None,
                origin: str | None = None) -> dict:
    """Check a fetched .gz file's gzip stream, IDX header and pinned checksum; return its facts.

    ``origin`` (the URL or source path it came from) is what error messages name.
    """
    origin = origin or str(path)
    gz_bytes = Path(path).read_bytes()
    from pipeline.data import idx  # numpy: not for the no-op rerun, which only resolves sources

    content = idx.read_gzip(path, origin)
    idx.check_header(content, kind, origin)
    facts = {
        "file": path.name,
        "gz_bytes": len(gz_bytes),
        "gz_sha256": hashlib.sha256(gz_bytes).hexdigest(),
        "content_sha256": hashlib.sha256(content).hexdigest(),
    }
    if fingerprint is None:
        return facts
    gz_matches = fingerprint.gz_sha256 == facts["gz_sha256"] and fingerprint.gz_size in (
        None, facts["gz_bytes"],
    )
    if gz_matches or fingerprint.content_sha256 == facts["content_sha256"]:
        return facts
    expected = " or ".join(
        text
        for text in (
            fingerprint.gz_sha256 and f".gz sha256 {fingerprint.gz_sha256} ({fingerprint.gz_size} bytes)",
            fingerprint.content_sha256 and f"content sha256 {fingerprint.content_sha256}",
        )
        if text
    )
    raise DataError(
        f"Checksum mismatch for {origin}: expected {expected}; got .gz sha256 "
        f"{facts['gz_sha256']} ({facts['gz_bytes']} bytes), content sha256 "
        f"{facts['content_sha256']}. The file is corrupt or not the official data: replace it, "
        "or use --data-dataset custom for your own files."
    )


def _kind(key: str) -> str:
    """Return 'images' or 'labels' for a FILE_NAMES key."""
    return "images" if key.endswith("images") else "labels"


def verify_files(dataset: DatasetInfo, directory: Path) -> list[dict]:
    """Verify the four files already in ``directory``; return their facts."""
    return [
        verify_file(Path(directory) / name, _kind(key), dataset.fingerprints.get(key))
        for key, name in FILE_NAMES.items()
    ]


def _location(source: str, name: str) -> str:
    """Return where file ``name`` lives in ``source``, as a URL or a path."""
    if source.startswith(("http://", "https://")):
        return source + name
    return str(Path(source) / name)


def _obtain(source: str, name: str, target: Path, on_progress: ProgressCallback | None) -> None:
    """Copy or download file ``name`` from one ``source`` into ``target``."""
    if source.startswith(("http://", "https://")):
        _fetch_with_retries(_location(source, name), target, on_progress)
        return
    origin = Path(_location(source, name))
    if not origin.is_file():
        raise SourceError(f"{origin} does not exist (the directory must hold all four .gz files)")
    shutil.copyfile(origin, target)


def fetch_dataset(
    dataset: DatasetInfo,
    source: str,
    destination: Path,
    on_progress: ProgressCallback | None = None,
) -> list[dict]:
    """Put the four verified .gz files of ``dataset`` into ``destination``; return their facts.

    Each source is tried in order; a file that fails verification from one mirror is fetched
    from the next. With a single source its own error is raised unchanged.
    """
    sources = resolve_sources(dataset, source)
    records = []
    for key, name in FILE_NAMES.items():
        kind = _kind(key)
        target = Path(destination) / name
        failures = []
        for candidate in sources:
            try:
                _obtain(candidate, name, target, on_progress)
                facts = verify_file(target, kind, dataset.fingerprints.get(key),
                                    _location(candidate, name))
            except (SourceError, DataError) as error:
                target.unlink(missing_ok=True)
                if len(sources) == 1 and isinstance(error, DataError):
                    raise
                failures.append(f"{_location(candidate, name)}: {error}")
                continue
            facts["source"] = candidate
            records.append(facts)
            log.info("Fetched %s from %s (%d bytes)", name, candidate, facts["gz_bytes"])
            break
        else:
            raise SourceError(
                f"Could not fetch {name}. Tried:\n  "
                + "\n  ".join(failures)
                + "\nCheck the network, or set --data-source to a directory holding the four files; "
                "to try the pipeline without them, use the generated data set: --data-dataset synthetic."
            )
    return records
