"""The staircase learning-rate schedule."""

import pytest

from pipeline.schedule import keras_schedule, learning_rate_at, steps_per_epoch


def test_rate_drops_once_per_epoch():
    assert learning_rate_at(0, 0.01, 0.95, 55_000, 64) == 0.01
    assert learning_rate_at(859, 0.01, 0.95, 55_000, 64) == 0.01
    assert learning_rate_at(860, 0.01, 0.95, 55_000, 64) == pytest.approx(0.0095)
    assert learning_rate_at(8593, 0.01, 0.95, 55_000, 64) == pytest.approx(0.01 * 0.95 ** 9)


def test_keras_schedule_matches_the_formula():
    schedule = keras_schedule(0.01, 0.95, 55_000, 64)
    for step in (0, 859, 860, 1719, 1720, 8000):
        assert float(schedule(step)) == pytest.approx(learning_rate_at(step, 0.01, 0.95, 55_000, 64))


def test_steps_per_epoch_drops_the_partial_batch():
    assert steps_per_epoch(55_000, 64) == 859
    assert steps_per_epoch(10, 64) == 1
