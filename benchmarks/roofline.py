"""Speed against the machine's own limit: training GFLOP/s as a fraction of this CPU's matmul peak.

    python -m benchmarks.roofline [--repeats 2] [--data DIR]

In each of ``--repeats`` rounds: TensorFlow's 2048x2048 matrix product in float32 and in bfloat16
(the peak a dense kernel reaches here, median of 3 timings of 20 products each), then one epoch of
training steps of ours at the defaults, ours in float32 and the 2018 feed_dict loop (each in its
own process, as ``benchmarks.train_throughput`` measures them, steps only). The "effective" GFLOP/s
are images/s times the FLOPs the direct convolutions and matrix products of one training image
take (docs/benchmarks.md derives them: about 72.4 MFLOP), given as a fraction of the peak of the
precision each ran in, measured in the same round: a shared VM's speed drifts over minutes, and
the peak and the training it divides are then timed a minute apart, not a quarter of an hour.
Figures are medians over the rounds (the fraction: the median of the rounds' fractions). With
``kernels = winograd`` conv2 does fewer multiplications than that count, so the effective figure
can pass 100% of the peak: the time a direct computation would need at the peak is longer than
the time taken.
"""

import argparse
import json
import time
from statistics import median

from benchmarks.common import FASHION_DIR, machine_summary, medians, python_command, run_measured

MATRIX_SIZE = 2048
PRODUCTS_PER_TIMING = 20
PEAK_TIMINGS = 3
PEAK_DTYPES = ("float32", "bfloat16")


def conv_macs(output_side: int, filters: int, kernel_side: int, channels: int) -> int:
    """Return the multiply-adds of a SAME convolution producing ``output_side``^2 x ``filters``."""
    return output_side * output_side * filters * kernel_side * kernel_side * channels


def training_flops_per_image() -> dict[str, float]:
    """Return the FLOPs (2 per multiply-add) of the model's forward and backward pass for one image.

    Forward: conv1 28x28x32 from 5x5x1, conv2 14x14x64 from 5x5x32, fc1 3136->512, fc2 512->10.
    Backward: each layer's weight gradient costs its forward again, and its input gradient once
    more, except conv1, whose input (the image) needs no gradient.
    """
    layers = {"conv1": conv_macs(28, 32, 5, 1), "conv2": conv_macs(14, 64, 5, 32),
              "fc1": 3136 * 512, "fc2": 512 * 10}
    forward = 2 * sum(layers.values())
    backward = 2 * (layers["conv1"] + 2 * (layers["conv2"] + layers["fc1"] + layers["fc2"]))
    return {"forward": forward, "backward": backward, "total": forward + backward}


def matmul_peak(dtype_name: str, repeats: int) -> float:
    """Return the median GFLOP/s of ``repeats`` timings of 2048x2048 products in ``dtype_name``."""
    from pipeline.tensorflow_runtime import import_tensorflow

    tf = import_tensorflow()
    dtype = getattr(tf, dtype_name)
    a = tf.cast(tf.random.normal((MATRIX_SIZE, MATRIX_SIZE), seed=1), dtype)
    b = tf.cast(tf.random.normal((MATRIX_SIZE, MATRIX_SIZE), seed=2), dtype)

    @tf.function
    def products():
        total = tf.zeros((), tf.float32)
        for _ in tf.range(PRODUCTS_PER_TIMING):
            total += tf.cast(tf.reduce_sum(tf.linalg.matmul(a, b)[0, :1]), tf.float32)
        return total

    products().numpy()
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        products().numpy()
        rates.append(2 * MATRIX_SIZE ** 3 * PRODUCTS_PER_TIMING / (time.perf_counter() - started) / 1e9)
    return sorted(rates)[len(rates) // 2]


def run_worker(*args: str) -> dict:
    result = run_measured(python_command(*args))
    if result["returncode"] != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result['output'][-3000:]}")
    return json.loads(result["output"].strip().splitlines()[-1])


def main() -> None:
    """Measure the peaks and the three trainings, then print GFLOP/s and fractions of the peak."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", default=str(FASHION_DIR))
    parser.add_argument("--peak", choices=PEAK_DTYPES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak:
        print(json.dumps({"gflops": matmul_peak(args.peak, PEAK_TIMINGS)}))
        return
    flops = training_flops_per_image()
    print(f"roofline on {machine_summary()}; one training image = {flops['total'] / 1e6:.1f} MFLOP "
          f"(forward {flops['forward'] / 1e6:.1f}, backward {flops['backward'] / 1e6:.1f})")
    modes = {"ours_default": "auto", "ours_float32": "float32", "baseline_2018": "tf1"}
    peaks = {name: [] for name in PEAK_DTYPES}
    runs = {name: [] for name in modes}
    for _ in range(args.repeats):
        for name in PEAK_DTYPES:
            peaks[name].append(run_worker("-m", "benchmarks.roofline", "--peak", name)["gflops"])
        for name, mode in modes.items():
            runs[name].append(run_worker("-m", "benchmarks.train_throughput", "--worker", mode, "--data", args.data))
    for name, values in peaks.items():
        print(f"  matmul {MATRIX_SIZE}x{MATRIX_SIZE} {name:9s} {median(values):7.1f} GFLOP/s "
              f"(rounds: {', '.join(f'{value:.1f}' for value in values)})")
    rates = medians({name: [run["steps_only"] for run in measured] for name, measured in runs.items()})
    for name, rate in rates.items():
        setup = runs[name][0].get("setup", "float32, TF1 graph")
        precision = "bfloat16" if setup.startswith("mixed_bfloat16") else "float32"
        fractions = [run["steps_only"] * flops["total"] / 1e9 / peak for run, peak in zip(runs[name], peaks[precision])]
        print(f"  {name:14s} {rate:7.0f} images/s = {rate * flops['total'] / 1e9:6.1f} effective GFLOP/s, "
              f"{median(fractions):.0%} of the {precision} peak (rounds: {', '.join(f'{f:.0%}' for f in fractions)}; "
              f"{setup})")
    print(f"  ratio ours_default / baseline_2018: {rates['ours_default'] / rates['baseline_2018']:.2f}")


if __name__ == "__main__":
    main()
