"""Training settings are validated with messages that say what to change."""

import pytest

from pipeline.training.config import TrainingConfig
from pipeline.errors import ConfigError


def test_defaults_are_the_2018_schedule():
    config = TrainingConfig()
    assert (config.epochs, config.batch_size, config.learning_rate, config.seed) == (10, 64, 0.01, 66478)


@pytest.mark.parametrize("field, value, hint", [
    ("epochs", 0, "--Train-epochs"),
    ("batch_size", 0, "--Train-batch-size"),
    ("dropout", 1.0, "--Train-dropout"),
])
def test_bad_values_name_the_parameter(field, value, hint):
    with pytest.raises(ConfigError, match=hint):
        TrainingConfig(**{field: value})


def test_unknown_precision_lists_the_choices():
    with pytest.raises(ConfigError, match="auto, float32, mixed_bfloat16, mixed_float16"):
        TrainingConfig(precision="float8")
