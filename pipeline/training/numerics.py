"""What ``precision = auto`` and ``kernels = auto`` mean on this host, decided before a run starts.

Train's artifact id holds the resolved values, so ``auto`` and its explicit resolution are one
artifact, and hosts whose numerics differ never share one. Everything is read cheaply: the CPU's
flags from /proc/cpuinfo, a compiler on the PATH or ops built before, and whether an NVIDIA driver
lists GPUs. Only where a GPU is there does TensorFlow have to say which ones it sees and their
compute capabilities; that answer comes from a subprocess (so no TensorFlow is loaded in a process
that Luigi forks) and is cached per host fingerprint under the user's cache directory.
"""

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.training.config import auto_kernels
from pipeline.training.precision import choose_precision, cpu_flags, cpu_supports_bfloat16

NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


def tensorflow_fingerprint() -> str:
    """Return the installed TensorFlow's version and location, without importing it."""
    spec = importlib.util.find_spec("tensorflow")
    location = list(spec.submodule_search_locations or [])[0] if spec else "none"
    for name in ("tensorflow", "tensorflow-cpu", "tf-nightly"):
        try:
            return f"{name}=={importlib.metadata.version(name)} at {location}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return f"unknown at {location}"


def nvidia_gpus_listed() -> list[str]:
    """Return the GPUs the NVIDIA driver lists (and CUDA_VISIBLE_DEVICES does not hide), by bus id."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return []
    try:
        return sorted(path.name for path in NVIDIA_GPUS.iterdir())
    except OSError:
        return []


def _probe_cache_path(gpus: list[str]) -> Path:
    from pipeline.storage import default_cache_dir

    key = json.dumps([socket.gethostname(), tensorflow_fingerprint(), gpus,
                      os.environ.get("CUDA_VISIBLE_DEVICES")])
    return default_cache_dir() / "numerics" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


@functools.cache
def gpu_capabilities() -> tuple[tuple[int, int], ...]:
    """Return the compute capabilities of the GPUs TensorFlow uses here (empty without GPUs)."""
    gpus = nvidia_gpus_listed()
    if not gpus:
        return ()
    cache = _probe_cache_path(gpus)
    try:
        return tuple(tuple(pair) for pair in json.loads(cache.read_text()))
    except (OSError, ValueError):
        pass
    result = subprocess.run([sys.executable, "-m", "pipeline.training.numerics"],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PipelineError(f"Could not ask TensorFlow which GPUs it sees: {result.stderr.strip()[-500:]}")
    capabilities = json.loads(result.stdout.strip().splitlines()[-1])
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(capabilities))
    return tuple(tuple(pair) for pair in capabilities)


@functools.cache
def resolve_numerics(precision: str, kernels: str) -> tuple[str, str]:
    """Return (precision, kernels) with ``auto`` replaced by what this host trains with.

    ``precision auto``: bfloat16 on Ampere or newer GPUs and on CPUs with AVX512-BF16 or AMX,
    float16 on Volta and Turing, float32 elsewhere. ``kernels auto``: on a CPU where the compiled
    ops can be built (a compiler) or were built before, ``config.auto_kernels`` (the Winograd conv2
    for float32 and, without AMX, for mixed_bfloat16; the fused ops with AMX); stock TensorFlow ops
    otherwise (GPUs, float16). Explicit values are returned as they are (whether this host can
    run them is checked when training starts).
    """
    capabilities = list(gpu_capabilities()) if "auto" in (precision, kernels) else []
    if precision == "auto":
        precision = choose_precision(capabilities, cpu_supports_bfloat16())
    if kernels == "auto":
        from pipeline.training import native

        compiled = auto_kernels(precision, cpu_flags())
        kernels = compiled if not capabilities and native.available() else "stock"
    return precision, kernels


def main() -> None:
    """Print the compute capabilities of the GPUs TensorFlow sees, as JSON (the cached probe).

    With ``--auto``: print the Train options that ``auto`` resolves to on this host instead (what
    to pass on a Slurm cluster, run on one of its nodes: ``srun python -m pipeline.training.numerics --auto``).
    """
    if "--auto" in sys.argv[1:]:
        precision, kernels = resolve_numerics("auto", "auto")
        print(f"--Train-precision {precision} --Train-kernels {kernels}")
        return
    from pipeline.tensorflow_runtime import import_tensorflow

    tf = import_tensorflow()
    print(json.dumps([list(tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)))
                      for gpu in tf.config.list_physical_devices("GPU")]))


if __name__ == "__main__":
    main()
