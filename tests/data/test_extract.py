"""Extraction to .npy."""

import numpy as np

from pipeline.data.extract import extract_to_npy


def test_extract_writes_uint8_arrays(pattern_dir, tmp_path):
    counts = extract_to_npy(pattern_dir, tmp_path)
    assert counts == {"train": 1200, "test": 200}
    images = np.load(tmp_path / "train_images.npy")
    assert images.dtype == np.uint8 and images.shape == (1200, 28, 28)
    assert np.load(tmp_path / "test_labels.npy").max() <= 9
