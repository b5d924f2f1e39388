"""What the Slurm executor adds: a 1-epoch synthetic Train as a Slurm job against the same Train in the worker.

    python -m benchmarks.slurm_overhead [--repeats 3]

Uses the cluster of ``SLURM_CONF`` when set, else starts the one-node cluster of
deploy/slurm/slurm_cluster.py (Debian's munge, slurmctld and slurmd; needs root). Each round
prepares the data steps once in a fresh outputs root, then times ``luigi --module tasks Train``
with ``--Train-executor local`` and with ``slurm`` (explicit float32 and stock numerics, default
``[slurm] poll_s``), each into its own copy of that root, interleaved. The overhead is the
difference of the medians: submission, the job's start (a fresh Python importing TensorFlow on
the node, as the worker did), polling, and the worker's final check.
"""

import argparse
import os
import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from benchmarks.common import REPO_ROOT, interleaved, machine_summary, medians, python_command, run_measured

TRAIN = ["--Train-epochs", "1", "--Train-precision", "float32", "--Train-kernels", "stock"]


def luigi(outputs: Path, *args: str) -> list[str]:
    return python_command("-m", "luigi", "--module", "tasks", *args, "--local-scheduler",
                          "--data-dataset", "synthetic", "--paths-outputs", str(outputs))


def main() -> None:
    """Time both executors and print the medians and their difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with ExitStack() as stack:
        env = dict(os.environ)
        if not env.get("SLURM_CONF"):
            sys.path.insert(0, str(REPO_ROOT / "deploy" / "slurm"))
            from slurm_cluster import SlurmCluster

            root = Path(tempfile.mkdtemp(prefix="lenet-slurm-"))
            root.chmod(0o755)  # munged's socket must be reachable by its own user
            stack.callback(shutil.rmtree, root, ignore_errors=True)
            env.update(stack.enter_context(SlurmCluster(root)).environment())
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="slurm-overhead-")))
        prepared = work / "prepared"
        result = run_measured(luigi(prepared, "SplitValidation"), env)
        if result["returncode"] != 0:
            raise SystemExit(f"preparing the data failed:\n{result['output'][-3000:]}")
        rounds = iter(range(10**6))

        def measure(executor: str):
            def once() -> float:
                outputs = work / f"{executor}-{next(rounds)}"
                shutil.copytree(prepared, outputs)
                timed = run_measured(luigi(outputs, "Train", *TRAIN, "--Train-executor", executor), env)
                if timed["returncode"] != 0:
                    raise SystemExit(f"{executor} failed:\n{timed['output'][-3000:]}")
                return timed["wall_s"]
            return once

        print(f"slurm_overhead on {machine_summary()}: 1-epoch synthetic Train, {args.repeats} interleaved rounds")
        times = interleaved({"local": measure("local"), "slurm": measure("slurm")}, args.repeats)
    middle = medians(times)
    for name, value in middle.items():
        print(f"  {name:6s} {value:6.1f} s   ({min(times[name]):.1f}-{max(times[name]):.1f})")
    print(f"  the Slurm executor adds {middle['slurm'] - middle['local']:.1f} s")


if __name__ == "__main__":
    main()
