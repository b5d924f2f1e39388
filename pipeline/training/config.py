"""Training settings as one validated value, checked before any heavy work starts."""

from dataclasses import asdict, dataclass

from pipeline.errors import ConfigError

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
PRECISION_CHOICES = ("auto", *PRECISIONS)
# Which ops compute the slowest parts of a step: pipeline.training.fused (mixed bfloat16),
# pipeline.training.winograd_training (float32) or TensorFlow's own.
KERNEL_CHOICES = ("auto", "fused", "winograd", "stock")


@dataclass(frozen=True)
class TrainingConfig:
    """The schedule and model settings of SPEC.md, each overridable."""

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 0.01
    decay_rate: float = 0.95
    momentum: float = 0.9
    weight_decay: float = 5e-4
    dropout: float = 0.5
    seed: int = 66478
    precision: str = "auto"
    log_every: int = 100
    kernels: str = "auto"

    def __post_init__(self):
        checks = (
            (self.epochs >= 1, "epochs", "at least 1"),
            (self.batch_size >= 1, "batch_size", "at least 1"),
            (self.learning_rate > 0, "learning_rate", "above 0"),
            (0 < self.decay_rate <= 1, "decay_rate", "in (0, 1]"),
            (0 <= self.momentum < 1, "momentum", "in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay", "0 or more"),
            (0 <= self.dropout < 1, "dropout", "in [0, 1)"),
            (self.log_every >= 1, "log_every", "at least 1"),
        )
        for holds, name, rule in checks:
            if not holds:
                raise ConfigError(
                    f"Train {name} = {getattr(self, name)!r} must be {rule} "
                    f"(set --Train-{name.replace('_', '-')} or [Train] {name} in luigi.cfg)."
                )
        if self.precision not in PRECISION_CHOICES:
            raise ConfigError(
                f"Train precision = {self.precision!r} is unknown: choose one of "
                f"{', '.join(PRECISION_CHOICES)} (--Train-precision)."
            )
        if self.kernels not in KERNEL_CHOICES:
            raise ConfigError(
                f"Train kernels = {self.kernels!r} is unknown: choose one of "
                f"{', '.join(KERNEL_CHOICES)} (--Train-kernels)."
            )

    def as_dict(self) -> dict:
        """Return the settings as a plain dict (for ``meta.json`` and artifact ids)."""
        return asdict(self)


def auto_kernels(precision: str, cpu_flags: list[str]) -> str:
    """Return what ``kernels = auto`` means for ``precision`` on a CPU with these /proc/cpuinfo flags.

    For one CPU device where the ops build (docs/benchmarks.md has the measurements behind it):
    float32 takes the Winograd conv2; mixed bfloat16 too on AVX512-BF16 without AMX, and the
    fused ops with oneDNN's AMX convolutions where AMX is there. Other precisions get stock.
    """
    if precision == "float32":
        return "winograd"
    if precision == "mixed_bfloat16":
        return "winograd" if "avx512_bf16" in cpu_flags and "amx_bf16" not in cpu_flags else "fused"
    return "stock"
