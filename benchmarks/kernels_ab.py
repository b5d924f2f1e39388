"""Two kernel choices at one precision, paired: which trains faster on this CPU.

    python -m benchmarks.kernels_ab [--precision float32] [--kernels winograd stock] [--rounds 30]

For deciding ``kernels`` on a CPU kind not measured yet (docs/benchmarks.md): both Trainers live
in one process on the same Fashion-MNIST training images and take turns, ``--chunk`` steps each,
the order swapped every round, so that the VM's slow and fast phases hit both alike. Prints the
median of the per-round ratios (second / first time: below 1 means the second is faster) with
its quartiles, and each one's median time per step.
"""

import argparse
import statistics
import time
from pathlib import Path

from benchmarks.common import FASHION_DIR, held_out_trainer, machine_summary


def main() -> None:
    """Time the two Trainers in alternating chunks and print the paired ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--kernels", nargs=2, default=["winograd", "stock"], metavar=("FIRST", "SECOND"))
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--chunk", type=int, default=30, help="steps per turn")
    parser.add_argument("--data", type=Path, default=FASHION_DIR)
    args = parser.parse_args()

    trainers = {kernels: held_out_trainer(args.data, args.precision, kernels)[0] for kernels in args.kernels}
    first, second = args.kernels
    order = trainers[first].epoch_order(0)
    steps = trainers[first].steps_per_epoch
    for trainer in trainers.values():
        trainer.run_steps(order, 0, args.chunk)  # traces the step and warms the caches
    print(f"kernels_ab on {machine_summary()}: {args.precision}, {first} ({trainers[first].kernels}) against "
          f"{second} ({trainers[second].kernels}), {args.rounds} rounds of {args.chunk} steps each", flush=True)
    per_step = {kernels: [] for kernels in args.kernels}
    ratios = []
    step = args.chunk
    for round_number in range(args.rounds):
        turn = args.kernels if round_number % 2 == 0 else args.kernels[::-1]
        for kernels in turn:
            started = time.perf_counter()
            trainers[kernels].run_steps(order, step, args.chunk)
            per_step[kernels].append((time.perf_counter() - started) / args.chunk * 1000)
        ratios.append(per_step[second][-1] / per_step[first][-1])
        step = (step + args.chunk) % (steps - args.chunk)
    low, _, high = statistics.quantiles(ratios)
    for kernels in args.kernels:
        print(f"  {kernels:10s} {statistics.median(per_step[kernels]):7.2f} ms per 64-image step (median)")
    print(f"  ratio {second} / {first} time: {statistics.median(ratios):.2f} (quartiles {low:.2f}-{high:.2f})")


if __name__ == "__main__":
    main()
