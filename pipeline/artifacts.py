"""Artifact directories: ids that hash their inputs, atomic creation, and ``meta.json``."""

import configparser
import contextlib
import errno
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from pipeline.errors import PipelineError

ID_LENGTH = 12
PACKAGES = ("numpy", "luigi", "tensorflow", "keras")


def configured_outputs(config_file: Path = Path("luigi.cfg")) -> Path:
    """Return ``[paths] outputs`` of ./luigi.cfg (or ``outputs``), for tools that run without Luigi."""
    config = configparser.ConfigParser()
    config.read(config_file)
    return Path(config.get("paths", "outputs", fallback="outputs") or "outputs")


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


def _pid_alive(pid: int) -> bool:
    """Return True when a process ``pid`` is running on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(final: Path) -> None:
    """Delete temporary siblings of ``final`` left by processes that died on this host."""
    prefix = f".{final.name}.tmp-{socket.gethostname()}-"
    if not final.parent.is_dir():
        return
    for candidate in final.parent.glob(f".{final.name}.tmp-*"):
        if not candidate.name.startswith(prefix):
            continue
        pid = candidate.name[len(prefix):].split("-")[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(candidate, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(final: Path):
    """Yield a temporary directory that becomes ``final`` only if the block completes.

    On any failure the temporary directory is removed, so nothing half-written can be taken
    for finished work. A full disk is reported with the path and what to do.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    temporary = final.parent / f".{final.name}.tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    temporary.mkdir()
    try:
        yield temporary
        os.rename(temporary, final)
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        if error.errno == errno.ENOSPC:
            raise PipelineError(
                f"No space left on the device while writing {final}: free some space or set "
                "[paths] outputs (--paths-outputs) to a larger disk, then run again."
            ) from error
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
    """Write ``meta.json``: what made this artifact, with which versions, when and how long."""
    meta = {
        "step": step,
        "artifact_id": identity,
        "params": params,
        "upstream": upstream,
        "versions": package_versions(),
        "host": socket.gethostname(),
        "command": sys.argv,
        **clock.as_dict(),
        **(extra or {}),
    }
    write_json(Path(directory) / "meta.json", meta)
