"""Test-set metrics."""

import numpy as np
import pytest

from pipeline.results.evaluation import classification_metrics


def test_metrics_count_errors_per_class():
    labels = np.array([0, 0, 1, 1, 2])
    predictions = np.array([0, 1, 1, 1, 0])
    metrics = classification_metrics(labels, predictions, ["a", "b", "c"])
    assert metrics["test_error"] == pytest.approx(40.0)
    assert metrics["test_accuracy"] == pytest.approx(0.6)
    assert metrics["num_examples"] == 5
    assert metrics["per_class_accuracy"] == {"a": 0.5, "b": 1.0, "c": 0.0}
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_empty_test_set_is_refused():
    with pytest.raises(ValueError, match="empty test set"):
        classification_metrics(np.array([]), np.array([]), ["a"])
