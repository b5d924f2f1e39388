"""Train writes TensorBoard event files that TensorBoard's own reader finds."""

import pytest

from conftest import artifacts, output_of


pytestmark = pytest.mark.slow


def test_event_files_hold_step_and_epoch_scalars(pattern_dir, run_cli, tmp_path):
    result = run_cli("Train", "--local-scheduler", "--data-dataset", "custom", "--data-source", str(pattern_dir),
                     "--paths-outputs", str(tmp_path), "--SplitValidation-validation-size", "200",
                     "--Train-epochs", "2", "--Train-log-every", "5")
    assert result.returncode == 0, output_of(result)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (train,) = artifacts(tmp_path, "train")
    events = EventAccumulator(str(train / "tensorboard"), size_guidance={"tensors": 0})
    events.Reload()
    tags = set(events.Tags()["tensors"])
    assert {"minibatch/loss", "minibatch/error_percent", "minibatch/learning_rate",
            "epoch/validation_error_percent", "epoch/train_loss"} <= tags
    assert [event.step for event in events.Tensors("minibatch/loss")] == [5, 10, 15, 20, 25, 30]
    assert [event.step for event in events.Tensors("epoch/validation_error_percent")] == [15, 30]
