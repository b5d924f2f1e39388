"""Training throughput: (a) the 2018 feed_dict loop, (b) ours in float32, (c) ours at the default, (d) Keras fit.

    python -m benchmarks.train_throughput [--repeats 3] [--data DIR] [--torch-python .venv-torch/bin/python]

(d) is what a user would write instead: the same LeNet (``make_model``, float32, dropout 0.5)
compiled with Keras' SGD (momentum 0.9, learning rate 0.01) and a plain ``model.fit`` over the
same images in batches of 64, without the L2 term or the learning-rate decay (a plain fit has
neither); its two figures are the same, as it validates nothing. With ``--torch-python``, (e) is
the optional PyTorch peer of benchmarks/torch_peer.py, run by that interpreter (``make torch-env``
makes one outside the project's lock files).

Each measurement is a fresh subprocess (TF1 graph mode and eager Keras cannot share one) on
the same Fashion-MNIST training images: ``--warmup`` untimed steps, then one epoch (859 steps of
64 images) timed. Two figures come out of that same epoch:

- as run: training plus the validation each does by design (the tutorial: the 5,000 validation
  images every 100 steps, in batches of 64; ours: once per epoch, in batches of 1,000);
- steps only: the training steps alone.

Rounds are interleaved (a, b, c, a, b, c, ...); the report gives the medians and the ratios
(b)/(a) and (c)/(a) for both figures.
"""

import argparse
import json
import time
from pathlib import Path

from benchmarks.common import (FASHION_DIR, held_out_trainer, interleaved, machine_summary, medians,
                               python_command, run_measured)

MODES = {"a_tf1_feed_dict": "tf1", "b_ours_float32": "float32", "c_ours_default": "auto", "d_keras_fit": "keras"}
TORCH_PEER = "e_torch_eager"


def measure_tf1(data: Path, warmup: int) -> dict:
    """Return images/s of the tutorial's own loop over one epoch, as run and steps only."""
    from benchmarks import tf1_baseline

    arrays = tf1_baseline.load_original_arrays(data)
    train_size = arrays["train_labels"].shape[0]
    graph = tf1_baseline.TutorialGraph(train_size)
    steps = train_size // tf1_baseline.BATCH_SIZE
    with graph.session() as session:
        tf1_baseline.run_steps(graph, session, arrays, 0, warmup, validate=False)
        train_s, validation_s = tf1_baseline.run_steps(graph, session, arrays, warmup, steps,
                                                       log=lambda line: None)
    images = steps * tf1_baseline.BATCH_SIZE
    return {"as_run": images / (train_s + validation_s), "steps_only": images / train_s}


def measure_ours(data: Path, precision: str, warmup: int) -> dict:
    """Return images/s of the pipeline's Trainer over one epoch, as run and steps only."""
    from pipeline.results.inference import error_rate

    trainer, (images, labels) = held_out_trainer(data, precision)
    trainer.run_steps(trainer.epoch_order(0), 0, warmup)
    error_rate(trainer.model, images[:1000], labels[:1000])
    started = time.perf_counter()
    trainer.train_epoch(1)
    train_s = time.perf_counter() - started
    error_rate(trainer.model, images, labels)
    total_s = time.perf_counter() - started
    count = trainer.steps_per_epoch * trainer.config.batch_size
    return {"as_run": count / total_s, "steps_only": count / train_s,
            "setup": f"{trainer.config.precision}, {trainer.kernels} kernels"}


def measure_keras_fit(data: Path, warmup: int) -> dict:
    """Return images/s of a plain Keras ``model.fit`` of the same model over one epoch."""
    import keras

    from benchmarks.common import VALIDATION_SIZE
    from pipeline.data.extract import load_split
    from pipeline.training.model import make_model

    images, labels = load_split(data, "train")
    images, labels = images[VALIDATION_SIZE:, ..., None], labels[VALIDATION_SIZE:].astype("int32")
    keras.utils.set_random_seed(1)
    model = make_model()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images[:warmup * 64], labels[:warmup * 64], batch_size=64, epochs=1, verbose=0)
    steps = len(labels) // 64
    started = time.perf_counter()
    model.fit(images[:steps * 64], labels[:steps * 64], batch_size=64, epochs=1, shuffle=True, verbose=0)
    rate = steps * 64 / (time.perf_counter() - started)
    return {"as_run": rate, "steps_only": rate, "setup": "Keras model.fit, float32"}


def worker(mode: str, data: Path, warmup: int) -> None:
    """Measure one mode in this process and print the result as JSON."""
    if mode == "tf1":
        rates = measure_tf1(data, warmup)
    elif mode == "keras":
        rates = measure_keras_fit(data, warmup)
    else:
        rates = measure_ours(data, mode, warmup)
    print(json.dumps(rates))


def main() -> None:
    """Run the interleaved comparison and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=FASHION_DIR)
    parser.add_argument("--torch-python", type=Path,
                        help="an interpreter with torch: adds the PyTorch peer (e), benchmarks/torch_peer.py")
    parser.add_argument("--worker", choices=sorted(set(MODES.values())), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.warmup)
        return

    commands = {name: python_command("-m", "benchmarks.train_throughput", "--worker", mode)
                for name, mode in MODES.items()}
    if args.torch_python:
        commands[TORCH_PEER] = [str(args.torch_python), "-m", "benchmarks.torch_peer"]
    runs: dict[str, list[dict]] = {name: [] for name in commands}

    def measurement(name: str):
        def measure() -> float:
            result = run_measured([*commands[name], "--data", str(args.data), "--warmup", str(args.warmup)])
            if result["returncode"] != 0:
                raise SystemExit(f"{name} failed:\n{result['output'][-3000:]}")
            rates = json.loads(result["output"].strip().splitlines()[-1])
            runs[name].append(rates)
            return rates["as_run"]
        return measure

    print(f"train_throughput on {machine_summary()}: one epoch of 64-image steps after "
          f"{args.warmup} warm-up steps, {args.repeats} interleaved rounds (values: images/s as run)")
    interleaved({name: measurement(name) for name in commands}, args.repeats)
    for name, measured in runs.items():
        if "setup" in measured[0]:
            print(f"  {name} ran {measured[0]['setup']}")
    for figure in ("as_run", "steps_only"):
        values = {name: [run[figure] for run in measured] for name, measured in runs.items()}
        rates = medians(values)
        baseline = rates["a_tf1_feed_dict"]
        print(f"\n{figure.replace('_', ' ')}: median images/s (lowest-highest round)")
        for name, rate in rates.items():
            print(f"  {name:18s} {rate:8.0f}   ({min(values[name]):.0f}-{max(values[name]):.0f})")
        print(f"  ratio (b)/(a) float32: {rates['b_ours_float32'] / baseline:.2f}")
        print(f"  ratio (c)/(a) default: {rates['c_ours_default'] / baseline:.2f}")
        print(f"  ratio (c)/(d) default against Keras fit: {rates['c_ours_default'] / rates['d_keras_fit']:.2f}")
        if TORCH_PEER in rates:
            print(f"  ratio (c)/(e) default against PyTorch: {rates['c_ours_default'] / rates[TORCH_PEER]:.2f}")


if __name__ == "__main__":
    main()
