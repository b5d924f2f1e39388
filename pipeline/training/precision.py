"""Choosing the numeric precision: ``auto`` picks the fastest mode the hardware runs accurately."""

from pathlib import Path

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """Return the CPU's feature flags as /proc/cpuinfo lists them (empty where it cannot be read)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return []
    return next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])


def cpu_supports_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Return True when the CPU has native bfloat16 arithmetic (AVX512-BF16 or AMX-BF16)."""
    return any(flag in cpu_flags(cpuinfo) for flag in BF16_CPU_FLAGS)


def choose_precision(gpu_compute_capabilities: list[tuple[int, int]], cpu_bf16: bool) -> str:
    """Return the precision ``auto`` means on this hardware.

    GPUs from Ampere on (compute capability 8.0+) run bfloat16 on tensor cores without loss
    scaling; Volta and Turing (7.x) have float16 tensor cores only; CPUs need native bfloat16,
    which oneDNN uses through AVX512-BF16 and AMX. Everything else trains fastest in float32.
    """
    if gpu_compute_capabilities:
        oldest = min(gpu_compute_capabilities)
        if oldest >= (8, 0):
            return "mixed_bfloat16"
        return "mixed_float16" if oldest >= (7, 0) else "float32"
    return "mixed_bfloat16" if cpu_bf16 else "float32"


def resolve_precision(requested: str) -> str:
    """Return ``requested``, or for ``auto`` the choice for the devices TensorFlow sees."""
    if requested != "auto":
        return requested
    import tensorflow as tf

    capabilities = [
        tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)))
        for gpu in tf.config.list_physical_devices("GPU")
    ]
    return choose_precision(capabilities, cpu_supports_bfloat16())
