"""Track's own cost: the seconds ``luigi --module tasks Track`` adds to a finished default run.

    python -m benchmarks.track_cost [--epochs 10] [--repeats 3] [--data DIR] [--dataset fashion_mnist]

Against the server of MLFLOW_TRACKING_URI, or else a throw-away ``mlflow server`` on loopback
(tests/mlflow_server.py: ``.venv-mlflow``, SQLite in a temporary directory), as the tests use.
In one run: the default Evaluate from an empty outputs directory (the baseline, its wall time),
then Track ``--repeats`` times, each into a new experiment so that it logs the whole run again
(parameters, per-epoch metrics, files and the model), then a rerun of Track with nothing to do.
Reported: Track's wall time (the process: Luigi, TensorFlow's and MLflow's imports, the
logging), the time its step took inside it (``meta.json`` ``duration_s``), and their ratio to the
Evaluate run's wall time. Medians over the repeats.
"""

import json
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

from benchmarks.common import REPO_ROOT, machine_summary, pipeline_run_parser, python_command, run_measured


def luigi_run(task: str, args, outputs: str, *extra: str) -> dict:
    """Run ``luigi --module tasks TASK`` on the benchmark's data; exit on failure."""
    result = run_measured(python_command(
        "-m", "luigi", "--module", "tasks", task, "--local-scheduler", "--data-dataset", args.dataset,
        "--data-source", str(args.data), "--paths-outputs", outputs, "--Train-epochs", str(args.epochs), *extra))
    if result["returncode"] != 0:
        raise SystemExit(f"{task} failed (exit {result['returncode']}):\n{result['output'][-3000:]}")
    return result


def step_seconds(outputs: str, step: str, experiment: str) -> float:
    """Return ``duration_s`` of the Track artifact logged into ``experiment``."""
    for meta in Path(outputs, step).glob("*/meta.json"):
        record = json.loads(meta.read_text())
        if record["params"].get("experiment") == experiment:
            return record["duration_s"]
    raise SystemExit(f"no {step} artifact for experiment {experiment}")


def measure(args, outputs: str) -> None:
    """Run the baseline Evaluate, then Track, and print the figures."""
    evaluate = luigi_run("Evaluate", args, outputs)
    print(f"Evaluate, {args.epochs} epochs, from empty outputs: {evaluate['wall_s']:.1f} s", flush=True)
    walls, steps, experiment = [], [], ""
    for _ in range(args.repeats):
        experiment = f"track-cost-{uuid.uuid4().hex[:8]}"
        walls.append(luigi_run("Track", args, outputs, "--Track-experiment", experiment)["wall_s"])
        steps.append(step_seconds(outputs, "track", experiment))
        print(f"  Track into {experiment}: {walls[-1]:.2f} s (its step {steps[-1]:.2f} s)", flush=True)
    noop = luigi_run("Track", args, outputs, "--Track-experiment", experiment)["wall_s"]
    wall, step = statistics.median(walls), statistics.median(steps)
    print(f"\n{machine_summary()}")
    print(f"Track adds {wall:.2f} s (median of {args.repeats}; its step alone {step:.2f} s) to an Evaluate run of "
          f"{evaluate['wall_s']:.1f} s: ratio {wall / evaluate['wall_s']:.4f} ({100 * wall / evaluate['wall_s']:.2f}%), "
          f"step alone {step / evaluate['wall_s']:.4f}")
    print(f"Track rerun with nothing to do: {noop:.2f} s")


def main() -> None:
    """Measure against MLFLOW_TRACKING_URI, or a throw-away server on loopback."""
    args = pipeline_run_parser(__doc__.splitlines()[0], repeats=3).parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        if os.environ.get("MLFLOW_TRACKING_URI"):
            measure(args, str(Path(scratch) / "outputs"))
            return
        sys.path.insert(0, str(REPO_ROOT / "tests"))
        from mlflow_server import TemporaryMlflow

        with TemporaryMlflow(Path(scratch) / "mlflow") as server:
            os.environ["MLFLOW_TRACKING_URI"] = server.uri
            measure(args, str(Path(scratch) / "outputs"))


if __name__ == "__main__":
    main()
