"""The model matches the 2018 architecture."""

import numpy as np
import pytest

import keras

from pipeline.training.model import make_model, weight_decay_variables


def test_trainable_parameter_count_is_the_original():
    model = make_model()
    assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == 1_663_370


def test_layer_shapes_follow_the_spec():
    model = make_model()
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    assert shapes["conv1"] == (28, 28, 32)
    assert shapes["pool1"] == (14, 14, 32)
    assert shapes["conv2"] == (14, 14, 64)
    assert shapes["pool2"] == (7, 7, 64)
    assert shapes["flatten"] == (3136,)
    assert shapes["fc1"] == (512,)
    assert shapes["fc2"] == (10,)


def test_initial_biases_and_weight_spread():
    keras.utils.set_random_seed(1)
    model = make_model()
    assert np.all(model.get_layer("conv1").bias.numpy() == 0.0)
    for name in ("conv2", "fc1", "fc2"):
        np.testing.assert_allclose(model.get_layer(name).bias.numpy(), 0.1)
    weights = model.get_layer("fc1").kernel.numpy()
    assert abs(weights.std() - 0.088) < 0.005  # a normal at 0.1 truncated at 2 sigma
    assert np.abs(weights).max() <= 0.2 + 1e-6


def test_pixels_are_scaled_to_plus_minus_half():
    model = make_model()
    scale = model.get_layer("scale")
    np.testing.assert_allclose(scale(np.array([[0.0, 127.5, 255.0]])).numpy(), [[-0.5, 0.0, 0.5]])


def test_weight_decay_covers_fc_layers_only():
    names = sorted(v.path for v in weight_decay_variables(make_model()))
    assert names == ["fc1/bias", "fc1/kernel", "fc2/bias", "fc2/kernel"]


def test_bad_dropout_is_a_value_error():
    with pytest.raises(ValueError, match="dropout must be in"):
        make_model(dropout=1.5)
