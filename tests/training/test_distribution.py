"""MirroredStrategy training equals single-device training (two logical CPUs stand in for GPUs)."""

import subprocess
import sys

import pytest

from conftest import REPO_ROOT, cli_env

pytestmark = pytest.mark.slow

SCRIPT = """
import sys, tempfile
from pathlib import Path
import numpy as np
import tensorflow as tf
cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
from pipeline.data import synthetic
from pipeline.training.config import TrainingConfig
from pipeline.training.loop import train_model
mirrored_strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
validation = synthetic.pattern_arrays(128, 2)

def both(train, epochs):
    # Stock ops on both sides: several replicas always train with them, and the compiled kernels
    # round differently (their own tests bound that).
    config = TrainingConfig(epochs=epochs, dropout=0.0, precision="float32", kernels="stock")
    single = train_model(train, validation, config, Path(tempfile.mkdtemp()))
    return single, train_model(train, validation, config, Path(tempfile.mkdtemp()), strategy=mirrored_strategy)

# Two steps: the same weights up to float rounding (summation order differs between replicas).
(single, _), (mirrored, _) = both(synthetic.pattern_arrays(128, 1), 1)
difference = max(float(np.abs(a - b).max()) for a, b in zip(single.get_weights(), mirrored.get_weights()))
# Twenty steps: rounding differences grow chaotically, so compare what training achieved.
(_, single_history), (_, history) = both(synthetic.pattern_arrays(640, 1), 2)
loss_gap = abs(single_history[-1]["train_loss"] - history[-1]["train_loss"]) / single_history[-1]["train_loss"]
print("replicas", mirrored_strategy.num_replicas_in_sync, "difference", difference,
      "loss_gap", loss_gap, "epochs", len(history))
"""


def test_two_replicas_train_like_one_device():
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO_ROOT, env=cli_env(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    words = result.stdout.split()
    assert words[words.index("replicas") + 1] == "2"
    assert float(words[words.index("difference") + 1]) < 1e-5
    assert float(words[words.index("loss_gap") + 1]) < 0.01
    assert words[words.index("epochs") + 1] == "2"
