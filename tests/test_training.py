"""Training learns, checkpoints every epoch, and resumes where it stopped."""

import numpy as np
import pytest

from pipeline import synthetic
from pipeline.config import TrainingConfig
from pipeline.training import Checkpoints, error_rate, train_model


@pytest.fixture(scope="module")
def small_data():
    return synthetic.pattern_arrays(640, seed=1), synthetic.pattern_arrays(200, seed=2)


def test_training_learns_the_pattern_and_logs_history(small_data, tmp_path):
    train, validation = small_data
    model, history = train_model(train, validation, TrainingConfig(epochs=2, log_every=5), tmp_path)
    assert [record["epoch"] for record in history] == [1, 2]
    assert history[-1]["validation_error"] < 10.0
    assert history[1]["learning_rate"] == pytest.approx(0.01 * 0.95)
    assert error_rate(model, *validation) == history[-1]["validation_error"]


def test_checkpoint_is_kept_per_epoch_and_training_resumes(small_data, tmp_path):
    train, validation = small_data
    _, first = train_model(train, validation, TrainingConfig(epochs=1), tmp_path)
    checkpoint = Checkpoints(tmp_path).latest()
    assert checkpoint.name == "ckpt-epoch-0001"
    epochs_seen = []
    _, history = train_model(train, validation, TrainingConfig(epochs=3), tmp_path,
                             on_epoch_end=lambda record: epochs_seen.append(record["epoch"]))
    assert epochs_seen == [2, 3]
    assert history[0] == first[0]
    assert Checkpoints(tmp_path).latest().name == "ckpt-epoch-0003"


def test_resumed_training_equals_uninterrupted_training(small_data, tmp_path):
    train, validation = small_data
    config = TrainingConfig(epochs=2, dropout=0.0)
    straight, _ = train_model(train, validation, config, tmp_path / "straight")
    train_model(train, validation, TrainingConfig(epochs=1, dropout=0.0), tmp_path / "resumed")
    resumed, _ = train_model(train, validation, config, tmp_path / "resumed")
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_bfloat16_trains(small_data, tmp_path):
    train, validation = small_data
    _, history = train_model(train, validation, TrainingConfig(epochs=1, precision="mixed_bfloat16"),
                             tmp_path)
    assert np.isfinite(history[0]["train_loss"])
    assert history[0]["validation_error"] < 50.0


def test_float16_trains_with_loss_scaling(small_data, tmp_path):
    """float16 convolutions crawl on CPUs, so this takes two steps only."""
    (images, labels), _ = small_data
    model, history = train_model((images[:128], labels[:128]), (images[:64], labels[:64]),
                                 TrainingConfig(epochs=1, precision="mixed_float16"), tmp_path)
    assert np.isfinite(history[0]["train_loss"])
    assert model.get_layer("fc1").compute_dtype == "float16"


def test_self_test_data_reaches_zero_error(tmp_path):
    """The original ``--self_test``: one epoch on 256 images, then 0.0% error."""
    train = synthetic.self_test_arrays(256)
    test = synthetic.self_test_arrays(64)
    model, _ = train_model(train, test, TrainingConfig(epochs=1), tmp_path)
    assert error_rate(model, *test) == 0.0
