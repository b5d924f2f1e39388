"""Generated IDX data: the original script's ``--self_test`` set and a learnable toy set for tests."""

from pathlib import Path

import numpy as np

from pipeline.data import idx
from pipeline.data.datasets import FILE_NAMES, SYNTHETIC

SELF_TEST_TRAIN = SYNTHETIC.train_count
SELF_TEST_TEST = 64


def self_test_arrays(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the original self-test data: label = index % 2, every pixel black (0) or white (1)."""
    labels = (np.arange(count) % 2).astype(np.uint8)
    # The original filled images with label - 0.5 after scaling; 0 and 255 scale to -0.5 and 0.5.
    images = np.repeat(labels * 255, 28 * 28).reshape(count, 28, 28).astype(np.uint8)
    return images, labels


def pattern_arrays(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return noisy images whose class (0..9) is a bright horizontal band: learnable in seconds."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=count).astype(np.uint8)
    images = rng.integers(0, 60, size=(count, 28, 28)).astype(np.uint8)
    for row_block in range(10):
        rows = slice(1 + row_block * 2 + row_block // 2, 3 + row_block * 2 + row_block // 2)
        images[labels == row_block, rows, :] = 230
    return images, labels


def write_idx_files(directory: Path, train: tuple, test: tuple) -> None:
    """Write the four gzip IDX files for (images, labels) ``train`` and ``test`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for split, (images, labels) in (("train", train), ("test", test)):
        idx.write_gzip(directory / FILE_NAMES[f"{split}_images"], idx.encode_images(images))
        idx.write_gzip(directory / FILE_NAMES[f"{split}_labels"], idx.encode_labels(labels))


def write_self_test_files(directory: Path) -> None:
    """Write the self-test data set as the four IDX files into ``directory``."""
    write_idx_files(directory, self_test_arrays(SELF_TEST_TRAIN), self_test_arrays(SELF_TEST_TEST))
