"""Splitting the training set: the first ``validation_size`` examples become the validation set."""

import numpy as np

from pipeline.config import check_validation_size


def split_validation(images: np.ndarray, labels: np.ndarray, validation_size: int) -> dict:
    """Return train and validation arrays, the validation set being the first examples (as in 2018)."""
    check_validation_size(validation_size, len(images))
    return {
        "validation_images": images[:validation_size],
        "validation_labels": labels[:validation_size],
        "train_images": images[validation_size:],
        "train_labels": labels[validation_size:],
    }
