"""Building and loading the project's compiled TensorFlow ops, cached per machine.

The ops (``pipeline/training/kernels``) are compiled with the host's C++ compiler against the installed
TensorFlow the first time it is needed, and kept under a cache directory keyed by everything the
binary depends on (sources, TensorFlow version and flags, compiler, CPU features), so that a
changed TensorFlow, compiler or machine rebuilds it instead of loading a stale binary. A host
without a compiler (the image's runtime stage) loads a library built for the same sources,
TensorFlow and CPU by whichever compiler built it.
"""

import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

LIBRARY_NAME = "lenet_ops.so"
CACHE_ENV = "LENET_KERNEL_CACHE"
# The arithmetic loops get the host's full vector width; the TensorFlow glue keeps the default
# target, because TensorFlow's Eigen headers do not compile with every -march=native (AVX512-FP16).
LOOP_FLAGS = ("-O3", "-march=native", "-fPIC")
LOOPS = {
    # No FMA contraction: the update then rounds exactly like TensorFlow's separate ops.
    "fused_momentum_loop.cc": ("-ffp-contract=off",),
    "conv_relu_pool_loop.cc": (),
    "winograd_loop.cc": (),
}
GLUE_FLAGS = ("-O2", "-fPIC", "-w")
GLUES = ("fused_momentum_op.cc", "conv_relu_pool_op.cc", "winograd_op.cc")


class NativeBuildError(PipelineError):
    """The compiled ops could not be built or loaded; the message says why and what to do."""


def cache_root() -> Path:
    """Return where built ops are kept: $LENET_KERNEL_CACHE, else the user's cache directory."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    from pipeline.storage import default_cache_dir

    return default_cache_dir() / "kernels"


def compiler() -> str:
    """Return the C++ compiler to use: $CXX, else g++."""
    return os.environ.get("CXX") or "g++"


def _source_dir() -> Path:
    return Path(str(resources.files("pipeline.training") / "kernels"))


def _sources() -> list[Path]:
    return sorted(p for p in _source_dir().iterdir() if p.suffix in (".cc", ".h"))


def _cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    return next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), "")


def _compiler_version(cxx: str) -> str:
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise NativeBuildError(
            f"no working C++ compiler {cxx!r} ({error}): install g++ (Debian: apt-get install g++), "
            f"set CXX to one, or train with --Train-kernels stock") from error


def _build_key() -> str:
    """Return a hash of what the binary depends on besides the compiler: sources, TensorFlow, flags, CPU.

    Read without importing TensorFlow (its version and location stand for its compile and link
    flags), so that deciding whether the ops are available stays cheap.
    """
    from pipeline.training.numerics import tensorflow_fingerprint

    key = hashlib.sha256()
    for source in _sources():
        key.update(source.name.encode() + source.read_bytes())
    for part in (tensorflow_fingerprint(), *LOOP_FLAGS, *GLUE_FLAGS, repr(LOOPS), platform.machine(), _cpu_flags()):
        key.update(part.encode())
    return key.hexdigest()[:20]


def available() -> bool:
    """Return True when the ops can be loaded here: a C++ compiler to build them, or a build from before."""
    return shutil.which(compiler()) is not None or prebuilt_library() is not None


def library_path() -> Path:
    """Return the path of the built ops for this machine, TensorFlow and compiler (built or not).

    ``<cache>/<build key>/<compiler key>/lenet_ops.so``: a changed compiler gets its own build.
    """
    compiler_key = hashlib.sha256(_compiler_version(compiler()).encode()).hexdigest()[:12]
    return cache_root() / _build_key() / compiler_key / LIBRARY_NAME


def prebuilt_library() -> Path | None:
    """Return a library built for this machine and TensorFlow by any compiler, or None.

    What a host without a compiler loads: an image's runtime stage gets the ops its build stage
    compiled, and uses them as long as the CPU matches the building host's.
    """
    found = sorted((cache_root() / _build_key()).glob(f"*/{LIBRARY_NAME}"), key=lambda path: path.stat().st_mtime)
    return found[-1] if found else None


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise NativeBuildError(
            f"building the fused ops failed ({command[0]} exit {result.returncode}):\n{tail}\n"
            f"Train with --Train-kernels stock to use TensorFlow's own ops instead.")


def build(target: Path) -> Path:
    """Compile the ops into ``target`` (atomically: a rename puts the finished file there).

    ``target`` comes from library_path(), which has already checked the compiler.
    """
    import tensorflow as tf

    cxx = compiler()
    log.info("Building the fused training ops for this machine with %s into %s (once, about 20 s)",
             cxx, target.parent)
    sources = _source_dir()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as work:
            objects = []
            for name, flags in LOOPS.items():
                objects.append(str(Path(work) / f"{name}.o"))
                _run([cxx, *LOOP_FLAGS, *flags, "-c", str(sources / name), "-o", objects[-1]])
            for name in GLUES:
                objects.append(str(Path(work) / f"{name}.o"))
                _run([cxx, *GLUE_FLAGS, *tf.sysconfig.get_compile_flags(), f"-I{sources}",
                      "-c", str(sources / name), "-o", objects[-1]])
            staged = Path(work) / LIBRARY_NAME
            _run([cxx, "-shared", *objects, "-o", str(staged), *tf.sysconfig.get_link_flags()])
            os.replace(staged, target)
    except OSError as error:
        raise NativeBuildError(
            f"cannot build the fused ops in {target.parent}: {error}. Set {CACHE_ENV} to a "
            f"writable directory with free space, or train with --Train-kernels stock") from error
    return target


@functools.cache
def ops():
    """Return the loaded op module (the ops of ``pipeline/training/kernels``), building it on first use.

    Raises NativeBuildError when there is no compiler or the build or load fails.
    """
    import tensorflow as tf

    try:
        path = library_path()
    except NativeBuildError:
        path = prebuilt_library()
        if path is None:
            raise
        log.info("Using the fused training ops built before for this machine: %s (no compiler here)", path)
    if not path.exists():
        build(path)
    try:
        return tf.load_op_library(str(path))
    except Exception as error:  # TensorFlow raises NotFoundError or others for a bad binary
        raise NativeBuildError(f"loading the fused ops {path} failed: {error}. Delete that "
                               f"file to rebuild it, or train with --Train-kernels stock") from error


def main() -> None:
    """Build the ops for this machine now if they are not built yet, and print where they are."""
    ops()
    print(prebuilt_library())


if __name__ == "__main__":
    main()
