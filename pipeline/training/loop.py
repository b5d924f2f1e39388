"""Training the model with the original schedule, logging as it did, resumable from checkpoints."""

import dataclasses
import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np
import keras
import tensorflow as tf

from pipeline.errors import ConfigError
from pipeline.results.inference import error_rate
from pipeline.training.checkpoints import Checkpoints
from pipeline.training.config import TrainingConfig
from pipeline.training.events import TENSORBOARD_DIR, ScalarWriter, purge_events_after
from pipeline.training.fused import choose_kernels
from pipeline.training.model import make_model
from pipeline.training.precision import resolve_precision
from pipeline.training.schedule import keras_schedule, steps_per_epoch
from pipeline.training.step import make_train_chunk

log = logging.getLogger(__name__)

EpochCallback = Callable[[dict], None]
StepCallback = Callable[[dict], None]


def make_optimizer(config: TrainingConfig, epoch_steps: int) -> keras.optimizers.Optimizer:
    """Return momentum SGD on the staircase schedule (one rate per epoch), loss-scaled for float16."""
    schedule = keras_schedule(config.learning_rate, config.decay_rate, epoch_steps)
    optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=config.momentum)
    if config.precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def distribution_strategy():
    """Return a MirroredStrategy over all local GPUs when there are several, else the default."""
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        log.info("Training on %d GPUs with MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _epoch_order(seed: int, epoch: int, count: int, batch_size: int):
    """Return the example order for ``epoch``: a function of (seed, epoch) alone, so resumes match."""
    order = np.random.default_rng([seed, epoch]).permutation(count)
    if count < batch_size:
        order = np.resize(order, batch_size)
    return tf.convert_to_tensor(order.astype(np.int32))


class Trainer:
    """The model, its optimizer and the training set on the device, stepped in compiled chunks."""

    def __init__(self, train: tuple[np.ndarray, np.ndarray], config: TrainingConfig, strategy=None):
        precision = resolve_precision(config.precision)
        if precision != config.precision:
            log.info("precision auto -> %s on this hardware", precision)
        self.config = config = dataclasses.replace(config, precision=precision)
        if precision == "mixed_float16" and not tf.config.list_physical_devices("GPU"):
            log.warning("precision mixed_float16 runs very slowly without a GPU; "
                        "mixed_bfloat16 or float32 are the CPU choices")
        self.train_size = len(train[0])
        if self.train_size < config.batch_size:
            log.warning("Only %d training images for batch size %d: batches repeat images",
                        self.train_size, config.batch_size)
        self.steps_per_epoch = steps_per_epoch(self.train_size, config.batch_size)
        self.strategy = strategy or distribution_strategy()
        replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            raise ConfigError(f"Train batch_size = {config.batch_size} must be a multiple of the "
                              f"{replicas} devices it is split over (--Train-batch-size).")
        keras.utils.set_random_seed(config.seed)
        with self.strategy.scope():
            self.model = make_model(dropout=config.dropout, dtype_policy=precision)
            self.optimizer = make_optimizer(config, self.steps_per_epoch)
            self.optimizer.build(self.model.trainable_variables)
        # The uint8 training set goes to the device once; each epoch only sends a permutation.
        self.images = tf.convert_to_tensor(train[0])
        self.labels = tf.convert_to_tensor(train[1])
        self.kernels = choose_kernels(
            config.kernels, precision, replicas,
            isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer))
        if self.kernels != config.kernels:
            log.info("kernels %s -> %s", config.kernels, self.kernels)
        self._train_chunk = make_train_chunk(self.model, self.optimizer, config, self.strategy,
                                              self.kernels)

    def epoch_order(self, epoch: int):
        """Return the shuffled example order of ``epoch`` as a device tensor."""
        return _epoch_order(self.config.seed, epoch, self.train_size, self.config.batch_size)

    def run_steps(self, order, first_step: int, num_steps: int) -> tuple[float, float, float]:
        """Run steps [first_step, first_step + num_steps) of an epoch in ``order``.

        Returns the last minibatch's loss and error (percent) and the sum of the losses.
        """
        loss, error, loss_sum = self._train_chunk(self.images, self.labels, order,
                                                  tf.constant(first_step), tf.constant(num_steps))
        return float(loss), float(error), float(loss_sum)

    def learning_rate(self) -> float:
        """Return the learning rate the optimizer applies at its current step."""
        inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        return float(keras.ops.convert_to_numpy(inner.learning_rate))

    def train_epoch(self, epoch: int, on_step: StepCallback | None = None) -> dict:
        """Train one epoch, logging every ``log_every`` steps; return its history record sans validation.

        ``on_step`` receives the same figures as each log line.
        """
        config, steps = self.config, self.steps_per_epoch
        epoch_start = time.monotonic()
        # The schedule gives every step of an epoch the same rate: the one in force now.
        learning_rate = self.learning_rate()
        order = self.epoch_order(epoch)
        step_in_epoch, loss_total = 0, 0.0
        while step_in_epoch < steps:
            global_step = epoch * steps + step_in_epoch
            chunk = min(config.log_every - global_step % config.log_every, steps - step_in_epoch)
            chunk_start = time.monotonic()
            loss, error, loss_sum = self.run_steps(order, step_in_epoch, chunk)
            loss_total += loss_sum
            step_in_epoch += chunk
            global_step += chunk
            if global_step % config.log_every == 0:
                progress = {
                    "step": global_step, "total_steps": steps * config.epochs,
                    "epoch": global_step / steps, "ms_per_step": 1000 * (time.monotonic() - chunk_start) / chunk,
                    "loss": loss, "learning_rate": learning_rate, "error": error,
                }
                log.info(
                    "Step %d (epoch %.2f), %.1f ms | Minibatch loss: %.3f, learning rate: %.6f | "
                    "Minibatch error: %.1f%%", progress["step"], progress["epoch"],
                    progress["ms_per_step"], loss, progress["learning_rate"], error,
                )
                if on_step:
                    on_step(progress)
        duration = time.monotonic() - epoch_start
        return {
            "epoch": epoch + 1,
            "step": (epoch + 1) * steps,
            "train_loss": loss_total / steps,
            "learning_rate": learning_rate,
            "duration_s": round(duration, 3),
            "images_per_s": round(steps * config.batch_size / duration, 1),
            "precision": config.precision,
            "kernels": self.kernels,
        }


def _resume(checkpoints: Checkpoints, checkpoint: Path, trainer: Trainer, epochs: int) -> tuple[int, list]:
    """Restore ``checkpoint`` and return (epochs done, history); (0, []) with one warning when it cannot be.

    A checkpoint that cannot be read whole, or that lacks part of the state (written by a version
    that kept other state, so resuming could not be exact), is removed and training starts over,
    so no retry fails on it again.
    """
    problem = checkpoints.unreadable(checkpoint)
    if problem is None:
        missing = checkpoints.missing_state(checkpoint, trainer.model, trainer.optimizer)
        problem = f"it lacks {', '.join(missing[:3])}" if missing else None
    if problem:
        log.warning("Cannot resume from %s (%s); training from the first epoch", checkpoint, problem)
        checkpoints.clear()
        return 0, []
    try:
        first_epoch, history = checkpoints.restore(checkpoint, trainer.model, trainer.optimizer)
    except Exception:
        # The model is half restored: this attempt cannot go on, but the next one starts afresh.
        checkpoints.clear()
        raise
    log.info("Resuming training from %s (epoch %d of %d done)", checkpoint, first_epoch, epochs)
    return first_epoch, history


def train_model(train: tuple[np.ndarray, np.ndarray], validation: tuple[np.ndarray, np.ndarray],
                config: TrainingConfig, work_dir: Path, on_epoch_end: EpochCallback | None = None,
                on_step: StepCallback | None = None, strategy=None) -> tuple[keras.Model, list]:
    """Train on uint8 (images, labels); return the model and per-epoch history.

    Checkpoints go to ``work_dir`` after every epoch; when one exists, training resumes from it.
    TensorBoard event files go to ``work_dir/tensorboard``: minibatch scalars every
    ``log_every`` steps, validation error and mean loss every epoch. A ``precision`` of ``auto``
    is resolved for this hardware; each history record names the precision used. Several local
    GPUs are used together (MirroredStrategy) unless ``strategy`` says otherwise.
    """
    trainer = Trainer(train, config, strategy)
    del train  # the trainer holds the training set as tensors now
    checkpoints = Checkpoints(work_dir)
    first_epoch, history = 0, []
    if (checkpoint := checkpoints.latest()) is not None:
        first_epoch, history = _resume(checkpoints, checkpoint, trainer, config.epochs)
    dropped = purge_events_after(Path(work_dir) / TENSORBOARD_DIR, first_epoch * trainer.steps_per_epoch)
    if dropped:
        log.info("Dropped %d TensorBoard events written after the last checkpoint", dropped)
    writer = ScalarWriter(Path(work_dir) / TENSORBOARD_DIR)

    def log_step(progress: dict) -> None:
        writer.write(progress["step"], {
            "minibatch/loss": progress["loss"], "minibatch/error_percent": progress["error"],
            "minibatch/learning_rate": progress["learning_rate"], "minibatch/ms_per_step": progress["ms_per_step"],
        })
        if on_step:
            on_step(progress)

    for epoch in range(first_epoch, config.epochs):
        record = trainer.train_epoch(epoch, log_step)
        record["validation_error"] = error_rate(trainer.model, *validation)
        writer.write(record["step"], {
            "epoch/validation_error_percent": record["validation_error"],
            "epoch/train_loss": record["train_loss"], "epoch/images_per_s": record["images_per_s"],
        })
        writer.flush()
        history.append(record)
        # Saved before the epoch's line is logged, so that a process stopped once the line shows
        # (a kill, scancel, a requeue) resumes after that epoch.
        checkpoints.save(trainer.model, trainer.optimizer, epoch + 1, history)
        log.info("Epoch %d/%d: mean loss %.3f, validation error %.2f%%, %.0f images/s",
                 epoch + 1, config.epochs, record["train_loss"], record["validation_error"],
                 record["images_per_s"])
        if on_epoch_end:
            on_epoch_end(record)
    writer.close()
    return trainer.model, history
