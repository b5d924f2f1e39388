"""The 2018 baseline: TensorFlow's LeNet MNIST tutorial script, ported to ``tf.compat.v1``.

Graph mode, placeholders fed with ``feed_dict`` one 64-image batch per ``Session.run``, data
walked in order, validation every 100 steps: the way the original trained. Used by the
benchmarks as (a); nothing in the pipeline imports it.

    python -m benchmarks.tf1_baseline --data /usr/share/datasets/fashion-mnist --epochs 10
"""

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import VALIDATION_SIZE
from pipeline.data.extract import load_split

IMAGE_SIZE = 28
NUM_LABELS = 10
SEED = 66478
BATCH_SIZE = 64
EVAL_BATCH_SIZE = 64
EVAL_FREQUENCY = 100


def load_original_arrays(directory: Path) -> dict:
    """Return float32 images scaled as the original did, and int64 labels, split as it did."""
    arrays = {}
    for split in ("train", "test"):
        images, labels = load_split(directory, split)
        arrays[f"{split}_data"] = ((images.astype(np.float32) - 127.5) / 255.0)[..., None]
        arrays[f"{split}_labels"] = labels.astype(np.int64)
    arrays["validation_data"] = arrays["train_data"][:VALIDATION_SIZE]
    arrays["validation_labels"] = arrays["train_labels"][:VALIDATION_SIZE]
    arrays["train_data"] = arrays["train_data"][VALIDATION_SIZE:]
    arrays["train_labels"] = arrays["train_labels"][VALIDATION_SIZE:]
    return arrays


class TutorialGraph:
    """The tutorial's graph: variables, model, loss, momentum optimizer, predictions."""

    def __init__(self, train_size: int):
        import tensorflow as tf

        v1 = tf.compat.v1
        v1.disable_eager_execution()
        self.graph = tf.Graph()
        with self.graph.as_default():
            v1.set_random_seed(SEED)
            self.train_data_node = v1.placeholder(tf.float32, (BATCH_SIZE, IMAGE_SIZE, IMAGE_SIZE, 1))
            self.train_labels_node = v1.placeholder(tf.int64, (BATCH_SIZE,))
            self.eval_data = v1.placeholder(tf.float32, (EVAL_BATCH_SIZE, IMAGE_SIZE, IMAGE_SIZE, 1))

            def normal(shape):
                return tf.Variable(v1.truncated_normal(shape, stddev=0.1, seed=SEED))

            conv1_weights, conv1_biases = normal([5, 5, 1, 32]), tf.Variable(tf.zeros([32]))
            conv2_weights, conv2_biases = normal([5, 5, 32, 64]), tf.Variable(tf.constant(0.1, shape=[64]))
            fc1_weights = normal([IMAGE_SIZE // 4 * IMAGE_SIZE // 4 * 64, 512])
            fc1_biases = tf.Variable(tf.constant(0.1, shape=[512]))
            fc2_weights, fc2_biases = normal([512, NUM_LABELS]), tf.Variable(tf.constant(0.1, shape=[NUM_LABELS]))

            def model(data, train=False):
                conv = tf.nn.conv2d(data, conv1_weights, strides=[1, 1, 1, 1], padding="SAME")
                relu = tf.nn.relu(tf.nn.bias_add(conv, conv1_biases))
                pool = tf.nn.max_pool2d(relu, ksize=2, strides=2, padding="SAME")
                conv = tf.nn.conv2d(pool, conv2_weights, strides=[1, 1, 1, 1], padding="SAME")
                relu = tf.nn.relu(tf.nn.bias_add(conv, conv2_biases))
                pool = tf.nn.max_pool2d(relu, ksize=2, strides=2, padding="SAME")
                shape = pool.get_shape().as_list()
                reshape = tf.reshape(pool, [shape[0], shape[1] * shape[2] * shape[3]])
                hidden = tf.nn.relu(tf.matmul(reshape, fc1_weights) + fc1_biases)
                if train:
                    hidden = tf.nn.dropout(hidden, rate=0.5, seed=SEED)
                return tf.matmul(hidden, fc2_weights) + fc2_biases

            logits = model(self.train_data_node, True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=self.train_labels_node, logits=logits))
            regularizers = (tf.nn.l2_loss(fc1_weights) + tf.nn.l2_loss(fc1_biases)
                            + tf.nn.l2_loss(fc2_weights) + tf.nn.l2_loss(fc2_biases))
            self.loss = loss + 5e-4 * regularizers
            batch = tf.Variable(0, dtype=tf.float32)
            self.learning_rate = v1.train.exponential_decay(0.01, batch * BATCH_SIZE, train_size, 0.95,
                                                            staircase=True)
            self.optimizer = v1.train.MomentumOptimizer(self.learning_rate, 0.9).minimize(
                self.loss, global_step=batch)
            self.train_prediction = tf.nn.softmax(logits)
            self.eval_prediction = tf.nn.softmax(model(self.eval_data))
            self.init = v1.global_variables_initializer()

    def session(self):
        """Return an initialised session on this graph."""
        import tensorflow as tf

        session = tf.compat.v1.Session(graph=self.graph)
        session.run(self.init)
        return session

    def eval_in_batches(self, session, data: np.ndarray) -> np.ndarray:
        """Return softmax predictions for ``data``, one small batch per run as the original did."""
        size = data.shape[0]
        predictions = np.ndarray((size, NUM_LABELS), dtype=np.float32)
        for begin in range(0, size, EVAL_BATCH_SIZE):
            end = begin + EVAL_BATCH_SIZE
            if end <= size:
                predictions[begin:end] = session.run(self.eval_prediction, {self.eval_data: data[begin:end]})
            else:
                batch = session.run(self.eval_prediction, {self.eval_data: data[-EVAL_BATCH_SIZE:]})
                predictions[begin:] = batch[begin - size:]
        return predictions


def error_rate(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Return the error rate in percent, as the original computed it."""
    return 100.0 - 100.0 * np.sum(np.argmax(predictions, 1) == labels) / predictions.shape[0]


def run_steps(graph: TutorialGraph, session, arrays: dict, first_step: int, num_steps: int,
              validate: bool = True, log=print) -> tuple[float, float]:
    """Run the tutorial's training loop for steps [first_step, first_step + num_steps).

    Every 100 steps it logs and measures the validation error, as the original did. Returns the
    seconds spent in training steps and in those periodic validations.
    """
    train_data, train_labels = arrays["train_data"], arrays["train_labels"]
    train_size = train_labels.shape[0]
    train_seconds = validation_seconds = 0.0
    for step in range(first_step, first_step + num_steps):
        offset = (step * BATCH_SIZE) % (train_size - BATCH_SIZE)
        feed_dict = {graph.train_data_node: train_data[offset:offset + BATCH_SIZE],
                     graph.train_labels_node: train_labels[offset:offset + BATCH_SIZE]}
        started = time.perf_counter()
        session.run(graph.optimizer, feed_dict=feed_dict)
        train_seconds += time.perf_counter() - started
        if validate and step % EVAL_FREQUENCY == 0:
            started = time.perf_counter()
            loss, rate, predictions = session.run(
                [graph.loss, graph.learning_rate, graph.train_prediction], feed_dict=feed_dict)
            validation = error_rate(graph.eval_in_batches(session, arrays["validation_data"]),
                                    arrays["validation_labels"])
            validation_seconds += time.perf_counter() - started
            log(f"Step {step} (epoch {step * BATCH_SIZE / train_size:.2f}) | Minibatch loss: "
                f"{loss:.3f}, learning rate: {rate:.6f} | Minibatch error: "
                f"{error_rate(predictions, feed_dict[graph.train_labels_node]):.1f}% | "
                f"Validation error: {validation:.1f}%")
    return train_seconds, validation_seconds


def train_and_test(directory: Path, epochs: int) -> float:
    """Train as the original did for ``epochs`` and return the test error in percent."""
    arrays = load_original_arrays(directory)
    train_size = arrays["train_labels"].shape[0]
    graph = TutorialGraph(train_size)
    with graph.session() as session:
        run_steps(graph, session, arrays, 0, int(epochs * train_size) // BATCH_SIZE)
        return error_rate(graph.eval_in_batches(session, arrays["test_data"]), arrays["test_labels"])


def main() -> None:
    """Train the 2018 way on a directory of IDX files and print the test error."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--epochs", type=float, default=10)
    args = parser.parse_args()
    print(f"Test error: {train_and_test(args.data, args.epochs):.1f}%")


if __name__ == "__main__":
    main()
