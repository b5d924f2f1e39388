"""No-op rerun: ``luigi --module tasks Evaluate`` with everything complete, against a trivial task.

    python -m benchmarks.noop_rerun [--repeats 7]

First makes a complete pipeline state quickly (the synthetic data set, one epoch) in a temporary
outputs directory, then times the user's command against ``benchmarks.trivial.Trivial`` (a
complete task and nothing else) in the same environment, interleaved; prints medians and the ratio.
"""

import argparse
import tempfile
from pathlib import Path

from benchmarks.common import interleaved, machine_summary, medians, python_command, run_measured


def main() -> None:
    """Prepare a finished run, then time the no-op rerun against the trivial task."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as outputs:
        pipeline_run = python_command("-m", "luigi", "--module", "tasks", "Evaluate", "--local-scheduler",
                                      "--data-dataset", "synthetic", "--Train-epochs", "1",
                                      "--paths-outputs", outputs)
        first = run_measured(pipeline_run)
        if first.get("returncode") != 0:
            raise SystemExit(f"preparing the run failed:\n{first['output'][-3000:]}")
        marker = Path(outputs) / "trivial.done"
        marker.write_text("done\n")
        trivial_run = python_command("-m", "luigi", "--module", "benchmarks.trivial", "Trivial",
                                     "--local-scheduler", "--path", str(marker))

        def timed(command):
            def measure() -> float:
                result = run_measured(command)
                if result["returncode"] != 0 or "Did not run any tasks" not in result["output"]:
                    raise SystemExit(f"not a no-op:\n{result['output'][-3000:]}")
                return result["wall_s"]
            return measure

        print(f"noop_rerun on {machine_summary()}: {args.repeats} interleaved rounds (seconds)")
        times = medians(interleaved({"trivial_task": timed(trivial_run),
                                     "pipeline_noop": timed(pipeline_run)}, args.repeats))
    print(f"trivial_task  median {times['trivial_task']:.3f} s")
    print(f"pipeline_noop median {times['pipeline_noop']:.3f} s")
    print(f"ratio pipeline/trivial: {times['pipeline_noop'] / times['trivial_task']:.2f}")


if __name__ == "__main__":
    main()
