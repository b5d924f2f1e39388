"""End to end: wall time, peak memory and test error of a full default run against the 2018 loop.

    python -m benchmarks.end_to_end [--epochs 10] [--data DIR] [--dataset fashion_mnist]

(a) is the tutorial script's port (``benchmarks.tf1_baseline``); ours is the user's command,
``luigi --module tasks Evaluate --local-scheduler``, from an empty outputs directory (so it
includes verifying, extracting and splitting the data). Each runs in its own process; peak
memory is that process's maximum resident set size. ``--epochs 1`` makes a short run.
"""

import argparse
import re
import tempfile
from pathlib import Path

from benchmarks.common import FASHION_DIR, machine_summary, python_command, run_measured

TEST_ERROR = re.compile(r"Test error: ([0-9.]+)%")


def summarise(name: str, result: dict) -> dict:
    """Return wall time, peak memory and test error of one finished run (exit on failure)."""
    match = TEST_ERROR.search(result["output"])
    if result["returncode"] != 0 or not match:
        raise SystemExit(f"{name} failed (exit {result['returncode']}):\n{result['output'][-3000:]}")
    return {"wall_s": result["wall_s"], "peak_rss_mb": result["peak_rss_mb"],
            "test_error": float(match.group(1))}


def main() -> None:
    """Run (a) then ours and print both with the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--data", type=Path, default=FASHION_DIR)
    parser.add_argument("--dataset", default="fashion_mnist")
    args = parser.parse_args()
    print(f"end_to_end on {machine_summary()}: {args.epochs} epochs of {args.data}")
    baseline = summarise("(a)", run_measured(python_command(
        "-m", "benchmarks.tf1_baseline", "--data", str(args.data), "--epochs", str(args.epochs))))
    with tempfile.TemporaryDirectory() as outputs:
        ours = summarise("ours", run_measured(python_command(
            "-m", "luigi", "--module", "tasks", "Evaluate", "--local-scheduler",
            "--data-dataset", args.dataset, "--data-source", str(args.data),
            "--paths-outputs", outputs, "--Train-epochs", str(args.epochs))))
    for name, figures in (("a_tf1_feed_dict", baseline), ("ours_default", ours)):
        print(f"{name:16s} wall {figures['wall_s']:7.1f} s   peak {figures['peak_rss_mb']:6.0f} MB   "
              f"test error {figures['test_error']:.1f}%")
    print(f"ratio wall ours/(a): {ours['wall_s'] / baseline['wall_s']:.2f}")
    print(f"ratio peak memory ours/(a): {ours['peak_rss_mb'] / baseline['peak_rss_mb']:.2f}")


if __name__ == "__main__":
    main()
