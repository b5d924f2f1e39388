"""Training learns, checkpoints every epoch, and resumes where it stopped."""

import numpy as np
import pytest
import tensorflow as tf

from pipeline.data import synthetic
from pipeline.training.config import TrainingConfig
from pipeline.results.inference import error_rate
from pipeline.training.checkpoints import Checkpoints
from pipeline.training.events import TENSORBOARD_DIR, purge_events_after
from pipeline.training.loop import Trainer, train_model


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


def test_resumed_training_equals_uninterrupted_training_bit_for_bit(small_data, tmp_path):
    """At the default settings: dropout 0.5 draws from a seed generator whose state must be restored."""
    train, validation = small_data
    config = TrainingConfig(epochs=3)
    straight, straight_history = train_model(train, validation, config, tmp_path / "straight")
    train_model(train, validation, TrainingConfig(epochs=1), tmp_path / "resumed")
    resumed, resumed_history = train_model(train, validation, config, tmp_path / "resumed")
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [r["train_loss"] for r in straight_history] == [r["train_loss"] for r in resumed_history]


def test_a_checkpoint_missing_part_of_the_state_is_not_resumed_from(small_data, tmp_path, caplog):
    train, validation = small_data
    train_model(train, validation, TrainingConfig(epochs=1), tmp_path)
    # A loss-scaled optimizer keeps state that a float32 checkpoint lacks: no exact resume from it.
    _, history = train_model(train, validation, TrainingConfig(epochs=2, precision="mixed_float16"), tmp_path)
    assert "lacks optimizer/inner/iterations, optimizer/loss_scale/dynamic_scale" in caplog.text
    assert [record["epoch"] for record in history] == [1, 2] and history[0]["precision"] == "mixed_float16"


def test_history_records_the_rate_each_epoch_trained_with(tmp_path):
    """650 images make 10 full batches an epoch, 640 images seen: the rate still drops per epoch."""
    train = synthetic.pattern_arrays(650, seed=1)
    seen_rates = []
    trainer_rates = lambda progress: seen_rates.append((progress["epoch"], progress["learning_rate"]))  # noqa: E731
    _, history = train_model(train, synthetic.pattern_arrays(64, seed=2), TrainingConfig(epochs=3, log_every=1),
                             tmp_path, on_step=trainer_rates)
    assert [record["learning_rate"] for record in history] == pytest.approx([0.01, 0.0095, 0.009025])
    for epoch, record in enumerate(history):
        logged = [rate for at, rate in seen_rates if epoch < at <= epoch + 1]
        assert len(logged) == 10 and all(rate == pytest.approx(record["learning_rate"]) for rate in logged)
    # The optimizer applies that rate to every step of the epoch, first and last included.
    trainer = Trainer(train, TrainingConfig(epochs=3))
    for epoch, record in enumerate(history):
        for step in (epoch * trainer.steps_per_epoch, (epoch + 1) * trainer.steps_per_epoch - 1):
            trainer.optimizer.iterations.assign(step)
            assert trainer.learning_rate() == pytest.approx(record["learning_rate"])



def test_resume_drops_tensorboard_events_written_after_the_checkpoint(small_data, tmp_path):
    train, validation = small_data
    train_model(train, validation, TrainingConfig(epochs=1, log_every=2), tmp_path)
    events_dir = tmp_path / TENSORBOARD_DIR
    # What a run killed in its second epoch leaves: scalars for steps past the checkpoint (10).
    with tf.summary.create_file_writer(str(events_dir)).as_default():
        for step in (12, 14, 16):
            tf.summary.scalar("minibatch/loss", 9.9, step=step)
    train_model(train, validation, TrainingConfig(epochs=2, log_every=2), tmp_path)
    steps = {}
    for path in events_dir.glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                steps.setdefault(value.tag, []).append(event.step)
    assert sorted(steps["minibatch/loss"]) == list(range(2, 21, 2)), "a step appears twice or is missing"
    assert purge_events_after(events_dir, 20) == 0


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
