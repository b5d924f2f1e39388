"""IDX parsing and validation."""

import gzip

import numpy as np
import pytest

from pipeline.data import idx
from pipeline.errors import DataError


def test_images_round_trip_as_uint8(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    idx.write_gzip(tmp_path / "x.gz", idx.encode_images(images))
    parsed = idx.parse_images(idx.read_gzip(tmp_path / "x.gz"))
    assert parsed.dtype == np.uint8
    np.testing.assert_array_equal(parsed, images)


def test_labels_round_trip():
    labels = np.array([0, 9, 3], dtype=np.uint8)
    np.testing.assert_array_equal(idx.parse_labels(idx.encode_labels(labels)), labels)


def test_label_file_given_as_images_names_the_magic_number():
    with pytest.raises(DataError, match="magic number is 2049, expected 2051"):
        idx.parse_images(idx.encode_labels(np.zeros(4, np.uint8)), "train-images")


def test_wrong_image_size_is_rejected():
    content = idx.encode_images(np.zeros((2, 28, 28), np.uint8)).replace(
        (28).to_bytes(4, "big") * 2, (32).to_bytes(4, "big") * 2, 1)
    with pytest.raises(DataError, match="32x32, this model needs 28x28"):
        idx.parse_images(content)


def test_truncated_images_are_rejected():
    content = idx.encode_images(np.zeros((5, 28, 28), np.uint8))[:-10]
    with pytest.raises(DataError, match="header says 5 images"):
        idx.parse_images(content)


def test_label_out_of_range_is_rejected():
    with pytest.raises(DataError, match="label 12 is outside 0..9"):
        idx.parse_labels(idx.encode_labels(np.array([1, 12], np.uint8)))


def test_non_gzip_file_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is not a complete gzip file"):
        idx.read_gzip(path)


def test_truncated_gzip_is_rejected(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(bytes(5000))[:-20])
    with pytest.raises(DataError, match="not a complete gzip file"):
        idx.read_gzip(path)


def test_image_and_label_counts_must_agree(tmp_path):
    idx.write_gzip(tmp_path / "i.gz", idx.encode_images(np.zeros((3, 28, 28), np.uint8)))
    idx.write_gzip(tmp_path / "l.gz", idx.encode_labels(np.zeros(4, np.uint8)))
    with pytest.raises(DataError, match="3 images but l.gz holds 4 labels"):
        idx.load_pair(tmp_path / "i.gz", tmp_path / "l.gz")
