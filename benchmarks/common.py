"""Helpers shared by the benchmarks: interleaved repeats, medians, measured subprocesses."""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parent.parent
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
VALIDATION_SIZE = 5000  # the original's held-out set, and SplitValidation's default


def held_out_trainer(data: Path, precision: str, kernels: str = "auto"):
    """Return our Trainer on ``data``'s training images past the first VALIDATION_SIZE, and those.

    The Trainer logs nothing on its own (benchmarks time it); the held-out (images, labels) come
    second.
    """
    from pipeline.training.config import TrainingConfig
    from pipeline.data.extract import load_split
    from pipeline.training.loop import Trainer

    images, labels = load_split(data, "train")
    trainer = Trainer((images[VALIDATION_SIZE:], labels[VALIDATION_SIZE:]),
                      TrainingConfig(precision=precision, kernels=kernels, log_every=10**9))
    return trainer, (images[:VALIDATION_SIZE], labels[:VALIDATION_SIZE])


def interleaved(measurements: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Run each measurement once per round, ``repeats`` rounds, so drift hits all alike."""
    results = {name: [] for name in measurements}
    for round_number in range(repeats):
        for name, measure in measurements.items():
            value = measure()
            results[name].append(value)
            print(f"  round {round_number + 1}: {name} = {value:.4g}", flush=True)
    return results


def medians(results: dict[str, list[float]]) -> dict[str, float]:
    """Return the median of each measurement's values."""
    return {name: statistics.median(values) for name, values in results.items()}


def run_measured(command: list[str], env: dict | None = None) -> dict:
    """Run ``command`` from the repo root; return wall seconds, peak RSS (MB), exit code, output."""
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall_s": time.monotonic() - started,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "returncode": process.returncode,
        "output": output,
    }


def python_command(*args: str) -> list[str]:
    """Return a command running this interpreter with ``args``."""
    return [sys.executable, *args]


def machine_summary() -> str:
    """Return a one-line description of this machine's CPU and core count."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def pipeline_run_parser(description: str, repeats: int) -> argparse.ArgumentParser:
    """Return the arguments of a benchmark that runs the pipeline on a data set: epochs, repeats, data, dataset."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--data", type=Path, default=FASHION_DIR)
    parser.add_argument("--dataset", default="fashion_mnist")
    return parser
