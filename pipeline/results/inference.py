"""Predicted classes of a trained model, in large compiled batches: for validation, evaluation and tracking."""

import weakref

import keras
import numpy as np
import tensorflow as tf

EVAL_BATCH_SIZE = 1000

_classifiers: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _classifier(model: keras.Model):
    """Return a compiled function from a uint8 image batch to predicted classes (one per model)."""
    if model not in _classifiers:
        @tf.function(reduce_retracing=True)
        def classify(batch):
            logits = model(tf.cast(batch, tf.float32)[..., None], training=False)
            return tf.argmax(logits, axis=1, output_type=tf.int32)

        _classifiers[model] = classify
    return _classifiers[model]


def predict_labels(model: keras.Model, images: np.ndarray, batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
    """Return the predicted class of each uint8 image, computed in large compiled batches."""
    classify = _classifier(model)
    predictions = [classify(tf.convert_to_tensor(images[start:start + batch_size])).numpy()
                   for start in range(0, len(images), batch_size)]
    return np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int32)


def error_rate(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    """Return the percentage of ``images`` the model misclassifies."""
    return float(100.0 * np.mean(predict_labels(model, images) != labels))
