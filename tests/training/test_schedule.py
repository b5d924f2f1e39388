"""The staircase learning-rate schedule."""

import pytest

from pipeline.training.schedule import keras_schedule, learning_rate_at, steps_per_epoch


def test_rate_drops_exactly_at_each_epoch_boundary():
    epoch_steps = steps_per_epoch(55_000, 64)
    assert learning_rate_at(0, 0.01, 0.95, epoch_steps) == 0.01
    assert learning_rate_at(858, 0.01, 0.95, epoch_steps) == 0.01
    # The first step of the second epoch already uses the decayed rate (not one step later).
    assert learning_rate_at(859, 0.01, 0.95, epoch_steps) == pytest.approx(0.0095)
    assert learning_rate_at(9 * 859, 0.01, 0.95, epoch_steps) == pytest.approx(0.01 * 0.95 ** 9)
    assert learning_rate_at(10 * 859 - 1, 0.01, 0.95, epoch_steps) == pytest.approx(0.01 * 0.95 ** 9)


def test_keras_schedule_matches_the_formula():
    schedule = keras_schedule(0.01, 0.95, 859)
    for step in (0, 858, 859, 1717, 1718, 8589, 8590):
        assert float(schedule(step)) == pytest.approx(learning_rate_at(step, 0.01, 0.95, 859))


def test_steps_per_epoch_drops_the_partial_batch():
    assert steps_per_epoch(55_000, 64) == 859
    assert steps_per_epoch(10, 64) == 1
