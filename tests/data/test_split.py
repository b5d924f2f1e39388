"""The validation split and its parameter checks."""

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.data.split import split_validation


def test_validation_is_the_first_examples():
    images = np.arange(10)[:, None, None].repeat(28, 1).repeat(28, 2).astype(np.uint8)
    labels = np.arange(10, dtype=np.uint8)
    parts = split_validation(images, labels, 3)
    np.testing.assert_array_equal(parts["validation_labels"], [0, 1, 2])
    np.testing.assert_array_equal(parts["train_labels"], np.arange(3, 10))
    assert parts["train_images"].shape == (7, 28, 28)


@pytest.mark.parametrize("size", [0, -1, 10, 11])
def test_validation_size_outside_the_training_set_is_refused(size):
    with pytest.raises(ConfigError, match=f"validation_size = {size} must be above 0 and below 10"):
        split_validation(np.zeros((10, 28, 28), np.uint8), np.zeros(10, np.uint8), size)
