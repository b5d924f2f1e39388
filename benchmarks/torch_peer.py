"""The optional PyTorch peer: a plain eager PyTorch loop of the same LeNet, one epoch timed.

    .venv-torch/bin/python -m benchmarks.torch_peer [--data DIR] [--warmup 50]

``benchmarks.train_throughput --torch-python .venv-torch/bin/python`` runs it as peer (e),
interleaved with the others; run alone, it prints its figures as JSON. It needs only torch and
numpy (``make torch-env`` makes that environment, outside the project's lock files: torch is a
large install that the pipeline never uses); ``benchmarks.common`` and the IDX reader it imports
from the repository need nothing else.

What a user choosing PyTorch would write: ``nn.Sequential`` of the same layers (5x5 SAME
convolutions of 32 and 64 filters with ReLU and 2x2 max pooling, fc 512 with ReLU, dropout 0.5,
fc 10), float32, channels_last memory format, ``torch.optim.SGD`` with momentum 0.9 and learning
rate 0.01, cross-entropy on the logits, shuffled batches of 64, all of the CPU's threads. Like the
Keras peer it has no L2 term, no decay and no validation, so its two figures are the same.
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.common import FASHION_DIR, VALIDATION_SIZE
from pipeline.data.extract import load_split

BATCH_SIZE = 64


def lenet() -> nn.Module:
    """Return the tutorial's LeNet as a PyTorch module taking N x 1 x 28 x 28 scaled pixels."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(7 * 7 * 64, 512), nn.ReLU(), nn.Dropout(0.5), nn.Linear(512, 10))


def measure(data: Path, warmup: int) -> dict:
    """Return images/s of one epoch of the plain PyTorch loop on ``data``'s training images."""
    torch.manual_seed(1)
    torch.set_num_threads(os.cpu_count() or 1)
    images, labels = load_split(data, "train")
    images = torch.from_numpy(images[VALIDATION_SIZE:].astype(np.float32) / 255 - 0.5)[:, None]
    images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.from_numpy(labels[VALIDATION_SIZE:].astype(np.int64))
    model = lenet().to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_function = nn.CrossEntropyLoss()

    def step(batch: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_function(model(images[batch]), labels[batch]).backward()
        optimizer.step()

    model.train()
    order = torch.randperm(len(labels))
    for index in range(warmup):
        step(order[index * BATCH_SIZE:(index + 1) * BATCH_SIZE])
    steps = len(labels) // BATCH_SIZE
    order = torch.randperm(len(labels))
    started = time.perf_counter()
    for index in range(steps):
        step(order[index * BATCH_SIZE:(index + 1) * BATCH_SIZE])
    rate = steps * BATCH_SIZE / (time.perf_counter() - started)
    return {"as_run": rate, "steps_only": rate,
            "setup": f"PyTorch {torch.__version__} eager, float32, channels_last, {torch.get_num_threads()} threads"}


def main() -> None:
    """Measure one epoch and print the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=FASHION_DIR)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(measure(args.data, args.warmup)))


if __name__ == "__main__":
    main()
