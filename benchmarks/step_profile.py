"""Where a training step's time goes: TensorFlow profiler totals per op for the pipeline's Trainer.

    python -m benchmarks.step_profile [--precision auto] [--kernels auto] [--steps 100] [--top 25] [--data DIR]

Runs the Trainer on the Fashion-MNIST training images (``--data``), ``--warmup`` untimed steps,
then times 200 steps for ms/step and profiles ``--steps`` more. Prints each op's total time per
step, largest first. Ops run two at a time on this project's 2-core machine (TensorFlow's inter-op
pool), so the totals add up to more than the wall time of a step; the figures say which ops are
large, not how much removing one would save. This is the profile behind docs/benchmarks.md's
"where our time goes".
"""

import argparse
import collections
import tempfile
import time
from pathlib import Path

from benchmarks.common import FASHION_DIR, held_out_trainer, machine_summary

TIMED_STEPS = 200


def op_totals(logdir: Path) -> collections.Counter:
    """Return the summed duration in ms of each TensorFlow op in a profiler trace under ``logdir``."""
    # The profiler's own protobuf; TensorFlow ships it but does not document it as public API.
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    traces = sorted(logdir.glob("**/*.xplane.pb"))
    if not traces:
        raise SystemExit(f"the profiler wrote no trace under {logdir}")
    space = xplane_pb2.XSpace()
    space.ParseFromString(traces[-1].read_bytes())
    totals: collections.Counter = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                # Ops are "scope/op_name:OpType"; the executor's own events ("ExecutorState::Process")
                # span the ops they run, so they would count twice.
                if ":" in name and "::" not in name:
                    totals[name.replace("while/body/_1/", "")] += event.duration_ps / 1e9
    return totals


def main() -> None:
    """Time and profile the Trainer, then print the largest ops."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--kernels", default="auto")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--data", type=Path, default=FASHION_DIR)
    args = parser.parse_args()

    import tensorflow as tf

    trainer, _ = held_out_trainer(args.data, args.precision, args.kernels)
    order = trainer.epoch_order(0)
    if args.warmup + TIMED_STEPS + args.steps > trainer.steps_per_epoch:
        raise SystemExit(f"--warmup + {TIMED_STEPS} + --steps must fit in one epoch "
                         f"({trainer.steps_per_epoch} steps)")
    trainer.run_steps(order, 0, args.warmup)
    started = time.perf_counter()
    trainer.run_steps(order, args.warmup, TIMED_STEPS)
    ms_per_step = 1000 * (time.perf_counter() - started) / TIMED_STEPS
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        trainer.run_steps(order, args.warmup + TIMED_STEPS, args.steps)
        tf.profiler.experimental.stop()
        totals = op_totals(Path(logdir))

    batch = trainer.config.batch_size
    print(f"step_profile on {machine_summary()}: precision {trainer.config.precision}, "
          f"{ms_per_step:.2f} ms per {batch}-image step ({1000 * batch / ms_per_step:.0f} images/s) "
          f"over {TIMED_STEPS} steps")
    print(f"ops summed over {args.steps} profiled steps: {sum(totals.values()) / args.steps:.2f} ms per step "
          f"(more than the wall time: two ops run at once)\n")
    print(f"{'ms/step':>8}  op (name:type)")
    for name, total in totals.most_common(args.top):
        print(f"{total / args.steps:8.3f}  {name}")


if __name__ == "__main__":
    main()
