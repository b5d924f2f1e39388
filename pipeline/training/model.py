"""The LeNet-5-like CNN of the 2018 tutorial, as a Keras 3 model."""

import keras
from keras import layers

IMAGE_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


def make_model(input_shape=IMAGE_SHAPE, num_classes=NUM_CLASSES, dropout=0.5,
               dtype_policy="float32") -> keras.Model:
    """Return the model of SPEC.md; it takes raw 0-255 pixels and returns class logits.

    Call ``keras.utils.set_random_seed`` first for reproducible initial weights.
    """
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")

    def weights():
        return keras.initializers.TruncatedNormal(stddev=0.1)

    def bias(value):
        return keras.initializers.Constant(value)

    policy = keras.DTypePolicy(dtype_policy)
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = layers.Rescaling(1 / 255, offset=-0.5, dtype=policy, name="scale")(inputs)
    x = layers.Conv2D(32, 5, padding="same", activation="relu", kernel_initializer=weights(),
                      bias_initializer=bias(0.0), dtype=policy, name="conv1")(x)
    x = layers.MaxPooling2D(2, strides=2, padding="same", dtype=policy, name="pool1")(x)
    x = layers.Conv2D(64, 5, padding="same", activation="relu", kernel_initializer=weights(),
                      bias_initializer=bias(0.1), dtype=policy, name="conv2")(x)
    x = layers.MaxPooling2D(2, strides=2, padding="same", dtype=policy, name="pool2")(x)
    x = layers.Flatten(dtype=policy, name="flatten")(x)
    x = layers.Dense(512, activation="relu", kernel_initializer=weights(),
                     bias_initializer=bias(0.1), dtype=policy, name="fc1")(x)
    x = layers.Dropout(dropout, dtype=policy, name="dropout")(x)
    logits = layers.Dense(num_classes, kernel_initializer=weights(), bias_initializer=bias(0.1),
                          dtype=policy, name="fc2")(x)
    return keras.Model(inputs, logits, name="lenet5")


def weight_decay_variables(model: keras.Model) -> list:
    """Return the variables the original's L2 penalty covers: weights and biases of fc1 and fc2."""
    return [variable for name in ("fc1", "fc2") for variable in model.get_layer(name).trainable_weights]
