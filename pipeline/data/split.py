"""Splitting the training set: the first ``validation_size`` examples become the validation set."""

from typing import TYPE_CHECKING

from pipeline.errors import ConfigError

if TYPE_CHECKING:  # numpy only for the annotations: the no-op rerun imports this module, not numpy
    import numpy as np

# The original held out the first 5,000 training images.
VALIDATION_SIZE = 5000


def split_validation(images: "np.ndarray", labels: "np.ndarray", validation_size: int) -> dict:
    """Return train and validation arrays, the validation set being the first examples (as in 2018)."""
    check_validation_size(validation_size, len(images))
    return {
        "validation_images": images[:validation_size],
        "validation_labels": labels[:validation_size],
        "train_images": images[validation_size:],
        "train_labels": labels[validation_size:],
    }


def check_validation_size(validation_size: int, train_count: int | None) -> None:
    """Raise ConfigError unless 0 < validation_size < train_count (when the count is known)."""
    if validation_size <= 0 or (train_count is not None and validation_size >= train_count):
        bound = f"{train_count}" if train_count is not None else "the training set size"
        raise ConfigError(
            f"SplitValidation validation_size = {validation_size} must be above 0 and below "
            f"{bound} (--SplitValidation-validation-size)."
        )
