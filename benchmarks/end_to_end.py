"""End to end: wall time, peak memory and test error of a full default run against the 2018 loop.

    python -m benchmarks.end_to_end [--epochs 10] [--repeats 1] [--data DIR] [--dataset fashion_mnist]

(a) is the tutorial script's port (``benchmarks.tf1_baseline``); ours is the user's command,
``luigi --module tasks Evaluate --local-scheduler``, from an empty outputs directory (so it
includes verifying, extracting and splitting the data). Each runs in its own process; peak
memory is that process's maximum resident set size. ``--epochs 1`` makes a short run.
``--repeats N`` runs N rounds, (a) first in odd rounds and ours first in even ones, so that a
slow phase of a shared machine does not always fall on the same side; figures are medians.
"""

import re
import tempfile

from benchmarks.common import machine_summary, medians, pipeline_run_parser, python_command, run_measured

TEST_ERROR = re.compile(r"Test error: ([0-9.]+)%")


def summarise(name: str, result: dict) -> dict:
    """Return wall time, peak memory and test error of one finished run (exit on failure)."""
    match = TEST_ERROR.search(result["output"])
    if result["returncode"] != 0 or not match:
        raise SystemExit(f"{name} failed (exit {result['returncode']}):\n{result['output'][-3000:]}")
    return {"wall_s": result["wall_s"], "peak_rss_mb": result["peak_rss_mb"],
            "test_error": float(match.group(1))}


def describe(figures: dict) -> str:
    """Return one run's figures as a line of text."""
    return (f"wall {figures['wall_s']:7.1f} s   peak {figures['peak_rss_mb']:6.0f} MB   "
            f"test error {figures['test_error']:.1f}%")


def run_baseline(args) -> dict:
    """Run (a), the 2018 loop, for ``args.epochs`` epochs; return its figures."""
    return summarise("(a)", run_measured(python_command(
        "-m", "benchmarks.tf1_baseline", "--data", str(args.data), "--epochs", str(args.epochs))))


def run_ours(args) -> dict:
    """Run the user's command from an empty outputs directory; return its figures."""
    with tempfile.TemporaryDirectory() as outputs:
        return summarise("ours", run_measured(python_command(
            "-m", "luigi", "--module", "tasks", "Evaluate", "--local-scheduler",
            "--data-dataset", args.dataset, "--data-source", str(args.data),
            "--paths-outputs", outputs, "--Train-epochs", str(args.epochs))))


def main() -> None:
    """Run (a) and ours, alternating which goes first, and print the medians with the ratios."""
    args = pipeline_run_parser(__doc__.splitlines()[0], repeats=1).parse_args()
    print(f"end_to_end on {machine_summary()}: {args.epochs} epochs of {args.data}, {args.repeats} round(s)")
    runs = {"a_tf1_feed_dict": (run_baseline, []), "ours_default": (run_ours, [])}
    for round_number in range(args.repeats):
        order = list(runs) if round_number % 2 == 0 else list(reversed(runs))
        for name in order:
            run, results = runs[name]
            results.append(run(args))
            print(f"  round {round_number + 1}: {name:16s} {describe(results[-1])}", flush=True)
    summary = {name: medians({key: [r[key] for r in results] for key in results[0]})
               for name, (_, results) in runs.items()}
    for name, figures in summary.items():
        print(f"{name:16s} {describe(figures)}")
    baseline, ours = summary["a_tf1_feed_dict"], summary["ours_default"]
    print(f"ratio wall ours/(a): {ours['wall_s'] / baseline['wall_s']:.2f}")
    print(f"ratio peak memory ours/(a): {ours['peak_rss_mb'] / baseline['peak_rss_mb']:.2f}")


if __name__ == "__main__":
    main()
