"""The learning-rate schedule of the original: decayed once per epoch (staircase)."""


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    """Return how many full batches one epoch holds (a partial last batch is dropped)."""
    return max(train_size // batch_size, 1)


def learning_rate_at(step: int, initial: float, decay_rate: float, epoch_steps: int) -> float:
    """Return the rate of optimizer step ``step``: ``initial * decay_rate ** epochs completed``.

    The 2018 script decayed by ``floor(examples_seen / train_size)``. With a partial last batch
    dropped, an epoch sees slightly fewer than ``train_size`` examples, and that formula would
    decay one step into the next epoch; counting completed epochs keeps one rate per epoch.
    """
    return initial * decay_rate ** (step // epoch_steps)


def keras_schedule(initial: float, decay_rate: float, epoch_steps: int):
    """Return the same schedule as a Keras ``LearningRateSchedule`` over optimizer steps."""
    import keras

    return keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=initial,
        decay_steps=epoch_steps,
        decay_rate=decay_rate,
        staircase=True,
    )
