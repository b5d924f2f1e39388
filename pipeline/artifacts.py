"""Artifacts: ids that hash their inputs, ``meta.json``, what "finished" means, atomic directories.

``meta.json`` is written last and lists every other file with its size and sha256. An artifact is
finished when its ``meta.json`` names its own id and every file it lists is there with the
listed size (``completeness_problem``): a directory copied or written only in part, or altered
by hand, is not. ``verify_artifact`` re-hashes the files.
"""

import contextlib
import errno
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import socket
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from typing import Callable

from pipeline.errors import PipelineError
from pipeline.redact import redact_argv

log = logging.getLogger(__name__)

ID_LENGTH = 12
META_FILE = "meta.json"
PACKAGES = ("numpy", "luigi", "tensorflow", "keras")
HASH_CHUNK_BYTES = 1 << 20


def artifact_id(step: str, params: dict, upstream: dict[str, str]) -> str:
    """Return a short stable hash of a step's name, significant params and upstream artifact ids."""
    identity = json.dumps({"step": step, "params": params, "upstream": upstream}, sort_keys=True)
    return hashlib.sha256(identity.encode()).hexdigest()[:ID_LENGTH]


def package_versions() -> dict[str, str]:
    """Return the installed versions of the packages that shape results, without importing them."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_json(path: Path, data) -> None:
    """Write ``data`` as indented JSON to ``path``."""
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path):
    """Return the JSON held in ``path``."""
    return json.loads(Path(path).read_text())


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def file_checksums(directory: Path) -> dict[str, dict]:
    """Return {relative path: {"bytes", "sha256"}} for every file below ``directory`` but meta.json."""
    directory = Path(directory)
    checksums = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if path.is_file() and relative != META_FILE:
            checksums[relative] = {"bytes": path.stat().st_size, "sha256": sha256_of(path)}
    return checksums


def completeness_problem(meta: dict | None, identity: str, sizes: dict[str, int]) -> str | None:
    """Return why an artifact is not finished, or None when it is.

    Finished means: its ``meta.json`` names ``identity`` and every file it records is present
    (``sizes``: relative path -> bytes, as found) with the recorded size. Sizes only, no hashing,
    so the check stays cheap enough for every rerun; ``verify`` re-hashes.
    """
    if meta is None:
        return f"it has no readable {META_FILE}"
    if meta.get("artifact_id") != identity:
        return f"its {META_FILE} names artifact {meta.get('artifact_id')!r}, not {identity!r}"
    recorded = meta.get("checksums")
    if not isinstance(recorded, dict):
        return f"its {META_FILE} records no files (written by an older version)"
    for relative, expected in sorted(recorded.items()):
        found = sizes.get(relative)
        if found is None:
            return f"{relative} is missing"
        if found != expected.get("bytes"):
            return f"{relative} has {found:,} bytes where {META_FILE} recorded {expected.get('bytes'):,}"
    return None


def read_meta(directory: Path) -> dict | None:
    """Return the parsed ``meta.json`` of a directory, or None when it is absent or unreadable."""
    try:
        return json.loads((Path(directory) / META_FILE).read_bytes())
    except (OSError, ValueError):
        return None


def recorded_sizes(directory: Path, meta: dict) -> dict[str, int]:
    """Return {relative path: bytes} of the files ``meta`` records that exist below ``directory``."""
    sizes = {}
    for relative in meta.get("checksums") or {}:
        try:
            sizes[relative] = os.stat(os.path.join(directory, relative)).st_size
        except OSError:
            pass
    return sizes


def directory_problem(directory: Path, identity: str) -> str | None:
    """Return why the local directory is not the finished artifact ``identity``, or None when it is."""
    meta = read_meta(directory)
    return completeness_problem(meta, identity, recorded_sizes(directory, meta) if meta else {})


def verify_files(label: str, recorded: dict | None, present: dict[str, int],
                 digest: Callable[[str], str]) -> list[str]:
    """Return one line per missing, altered or unrecorded file of an artifact.

    ``present`` maps the files found to their sizes, ``digest`` returns a found file's sha256;
    ``label`` prefixes each line (the artifact's directory or URI).
    """
    if recorded is None:
        return [f"{label}: {META_FILE} records no checksums (written by an older version; "
                "remove it and run again)"]
    problems = []
    for relative, expected in sorted(recorded.items()):
        if relative not in present:
            problems.append(f"{label}/{relative}: missing")
            continue
        actual = None if present[relative] != expected["bytes"] else digest(relative)
        if actual != expected["sha256"]:
            problems.append(f"{label}/{relative}: altered ({present[relative]:,} bytes, sha256 "
                            f"{actual or digest(relative)}; recorded {expected['bytes']:,} bytes, "
                            f"{expected['sha256']})")
    for relative in sorted(set(present) - set(recorded) - {META_FILE}):
        problems.append(f"{label}/{relative}: not recorded in {META_FILE} (added after the run)")
    return problems


def verify_artifact(directory: Path, identity: str | None = None) -> list[str]:
    """Return one line per problem of a local artifact directory: missing, altered or unlisted files."""
    directory = Path(directory)
    meta = read_meta(directory)
    if meta is None:
        return [f"{directory}: no readable {META_FILE}, so not a finished artifact (remove it; a run remakes it)"]
    if meta.get("artifact_id") != (identity or directory.name):
        return [f"{directory}: {META_FILE} names artifact {meta.get('artifact_id')!r}, "
                f"not {identity or directory.name!r} (remove it; a run remakes it)"]
    present = {path.relative_to(directory).as_posix(): path.stat().st_size
               for path in directory.rglob("*") if path.is_file()}
    return verify_files(str(directory), meta.get("checksums"), present,
                        lambda relative: sha256_of(directory / relative))


def fsync_tree(directory: Path) -> None:
    """Flush every file and directory below ``directory`` (and itself) to stable storage."""
    for root, _, files in os.walk(directory, topdown=False):
        for name in files:
            _fsync_path(os.path.join(root, name))
        _fsync_path(root)


def _fsync_path(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_leftovers(final: Path) -> list[Path]:
    """Remove the staging and set-aside siblings of ``final`` (``.<name>.tmp-*``, ``.<name>.unfinished-*``).

    Only safe while holding the lock that every writer of ``final`` holds: then no live process
    is writing any of them, whichever host made them.
    """
    final = Path(final)
    if not final.parent.is_dir():
        return []
    found = [path for pattern in (f".{final.name}.tmp-*", f".{final.name}.unfinished-*")
             for path in final.parent.glob(pattern)]
    for path in found:
        shutil.rmtree(path, ignore_errors=True)
    return found


def discard_directory(final: Path) -> None:
    """Remove ``final`` by moving it aside first, so no reader sees it half deleted."""
    aside = Path(final).parent / f".{Path(final).name}.unfinished-{uuid.uuid4().hex[:6]}"
    os.rename(final, aside)
    shutil.rmtree(aside, ignore_errors=True)


def _commit(temporary: Path, final: Path, finished: Callable[[Path], bool]) -> None:
    """Rename ``temporary`` to ``final``; if a finished ``final`` is already there, drop ``temporary``."""
    fsync_tree(temporary)
    try:
        os.rename(temporary, final)
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not finished(final):
            raise
        shutil.rmtree(temporary, ignore_errors=True)
        log.info("%s is already in place (made by another run); discarded this run's copy", final)
        return
    _fsync_path(str(final.parent))


def staging_name(final: Path) -> str:
    """Return a fresh hidden staging name beside ``final``: ``.<name>.tmp-<host>-<pid>-<random>``."""
    return f".{Path(final).name}.tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def tree_bytes(directory: Path) -> int:
    """Return the bytes of every file below ``directory``."""
    return sum(path.stat().st_size for path in Path(directory).rglob("*") if path.is_file())


def _mount_point(path: Path) -> Path:
    path = Path(path).resolve()
    while not os.path.ismount(path):
        path = path.parent
    return path


def is_full_disk(error: OSError, directory: Path) -> bool:
    """Return True when ``error`` came from a full file system under ``directory``.

    ENOSPC, or an OSError without an errno while less than a mebibyte is free: numpy reports a
    short write as "N requested and M written" with no errno.
    """
    if error.errno == errno.ENOSPC:
        return True
    try:
        return error.errno is None and shutil.disk_usage(directory).free < (1 << 20)
    except OSError:
        return False


def full_disk_error(final: Path, written: int, needed: int | None = None) -> PipelineError:
    """Return the error for a full file system while ``final`` was being written: where, and how much is needed."""
    usage = shutil.disk_usage(Path(final).parent)
    megabytes = lambda count: f"{count / 1e6:,.1f} MB"  # noqa: E731 - one formatting rule, used four times
    need = (f"it needs about {megabytes(needed)}" if needed and needed > written
            else f"it needs more than the {megabytes(written)} it had written")
    return PipelineError(
        f"The file system of {Path(final).parent} (mounted at {_mount_point(Path(final).parent)}: "
        f"{megabytes(usage.total)} in all, {megabytes(usage.free)} free now) is full: no space left while "
        f"writing {final}; {need}. Free some space there or set [paths] outputs (--paths-outputs) to a "
        "larger disk, then run again (nothing was left half-written).")


@contextlib.contextmanager
def atomic_directory(final: Path, finished: Callable[[Path], bool] = os.path.isdir, needed: int | None = None):
    """Yield a temporary directory that becomes ``final`` only if the block completes.

    Files and directories are flushed to disk before the rename, so a power loss never leaves
    ``final`` with empty files. On any failure the temporary directory is removed, so nothing
    half-written can be taken for finished work. When another process put a ``finished`` copy of
    ``final`` in place meanwhile, that copy stays and this one is discarded. A full disk is
    reported with where it is and how much the step needs (``needed`` bytes, when known).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.parent / staging_name(final)
    temporary.mkdir()
    try:
        yield temporary
        _commit(temporary, final, finished)
    except OSError as error:
        full = is_full_disk(error, temporary)
        written = tree_bytes(temporary) if full else 0
        shutil.rmtree(temporary, ignore_errors=True)
        if full:
            raise full_disk_error(final, written, needed) from error
        raise
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


class RunClock:
    """Records when a step started and ended, for ``meta.json``."""

    def __init__(self):
        self.started = datetime.now(timezone.utc)
        self._start = time.monotonic()

    def as_dict(self) -> dict:
        """Return the start, end and duration of the step so far."""
        return {
            "started": self.started.isoformat(timespec="seconds"),
            "ended": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "duration_s": round(time.monotonic() - self._start, 3),
        }


def write_meta(directory: Path, step: str, identity: str, params: dict, upstream: dict,
               clock: RunClock, extra: dict | None = None) -> None:
    """Write ``meta.json``: what made this artifact, with which versions, when and how long.

    Written last: it lists every other file of ``directory`` with its size and sha256.
    """
    meta = {
        "step": step,
        "artifact_id": identity,
        "params": params,
        "upstream": upstream,
        "versions": package_versions(),
        "host": socket.gethostname(),
        "command": redact_argv(sys.argv),
        **clock.as_dict(),
        **(extra or {}),
        "checksums": file_checksums(directory),
    }
    write_json(Path(directory) / META_FILE, meta)
