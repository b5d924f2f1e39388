"""Test-set metrics from true and predicted labels (plain numpy)."""

import numpy as np


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Return counts[true, predicted] for ``num_classes`` classes."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (labels.astype(np.int64), predictions.astype(np.int64)), 1)
    return counts


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, class_names) -> dict:
    """Return test error (percent), accuracy, per-class accuracy and the confusion matrix."""
    if len(labels) == 0:
        raise ValueError("cannot compute metrics on an empty test set")
    num_classes = len(class_names)
    counts = confusion_matrix(labels, predictions, num_classes)
    correct = int(np.trace(counts))
    support = counts.sum(axis=1)
    accuracy = correct / len(labels)
    return {
        "test_error": round(100.0 * (1.0 - accuracy), 4),
        "test_accuracy": round(accuracy, 6),
        "num_examples": int(len(labels)),
        "num_correct": correct,
        "per_class_accuracy": {
            name: (round(float(counts[index, index] / support[index]), 6) if support[index] else None)
            for index, name in enumerate(class_names)
        },
        "class_names": list(class_names),
        "confusion_matrix": counts.tolist(),
    }
