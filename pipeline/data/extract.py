"""Extraction: four validated IDX .gz files in, four uint8 ``.npy`` arrays out."""

from pathlib import Path

import numpy as np

from pipeline.data import idx
from pipeline.data.datasets import FILE_NAMES


def load_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the validated uint8 (images, labels) of ``split`` ('train' or 'test') in ``directory``."""
    return idx.load_pair(Path(directory) / FILE_NAMES[f"{split}_images"],
                         Path(directory) / FILE_NAMES[f"{split}_labels"])


def extract_to_npy(source: Path, destination: Path) -> dict:
    """Write ``{train,test}_{images,labels}.npy`` from the IDX files in ``source``; return counts."""
    counts = {}
    for split in ("train", "test"):
        images, labels = load_split(source, split)
        np.save(Path(destination) / f"{split}_images.npy", images)
        np.save(Path(destination) / f"{split}_labels.npy", labels)
        counts[split] = int(len(labels))
    return counts
