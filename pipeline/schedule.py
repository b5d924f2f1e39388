"""The learning-rate schedule of the original: decayed once per epoch (staircase)."""

import math


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    """Return how many full batches one epoch holds (a partial last batch is dropped)."""
    return max(train_size // batch_size, 1)


def learning_rate_at(step: int, initial: float, decay_rate: float, train_size: int,
                     batch_size: int) -> float:
    """Return ``initial * decay_rate ** floor(examples_seen / train_size)`` after ``step`` batches."""
    return initial * decay_rate ** math.floor(step * batch_size / train_size)


def keras_schedule(initial: float, decay_rate: float, train_size: int, batch_size: int):
    """Return the same schedule as a Keras ``LearningRateSchedule`` over optimizer steps."""
    import keras

    return keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=initial,
        decay_steps=train_size / batch_size,
        decay_rate=decay_rate,
        staircase=True,
    )
