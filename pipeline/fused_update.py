"""fc1's kernel stepped by one compiled op in mixed bfloat16: the same update, a quarter of the passes.

In ``mixed_bfloat16`` fc1's 3136x512 float32 kernel is the only large variable, and TensorFlow's
stock ops pass over it six times a step (cast to bfloat16, gradient cast back, the L2 term, the
gradient sum, the L2 loss, the momentum update). ``FusedDense`` keeps a bfloat16 copy of it
("shadow") that the forward pass multiplies with directly, and updates kernel, momentum and
shadow in one pass (``pipeline/kernels``). The arithmetic is TensorFlow's, in the same order, so
the weights after each step are the same bits as with the stock ops (tested); only the L2 loss
value is summed in another order (it is reported, not differentiated).
"""

import logging

import keras
import tensorflow as tf

from pipeline import native
from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

FUSED_LAYER = "fc1"


def fused_unavailable_reason(precision: str, replicas: int, loss_scaled: bool) -> str | None:
    """Return why the fused update cannot train this configuration here, or None when it can."""
    if precision != "mixed_bfloat16":
        return f"precision is {precision}; the fused update is for mixed_bfloat16"
    if replicas != 1 or loss_scaled:
        return "training is split over several devices"
    if tf.config.list_physical_devices("GPU"):
        return "a GPU holds the variables and the fused op runs on CPUs only"
    return None


def choose_update_kernel(requested: str, precision: str, replicas: int, loss_scaled: bool) -> str:
    """Resolve ``update_kernel`` (auto | fused | stock) to 'fused' or 'stock' for this run.

    ``auto`` means fused where it applies and builds, stock otherwise (logged); ``fused`` raises
    a PipelineError saying why when it cannot run.
    """
    if requested == "stock":
        return "stock"
    reason = fused_unavailable_reason(precision, replicas, loss_scaled)
    if reason is None:
        try:
            native.fused_momentum_op()
        except native.NativeBuildError as error:
            if requested == "fused":
                raise
            log.warning("update_kernel auto -> stock: %s", error)
            return "stock"
        return "fused"
    if requested == "fused":
        raise ConfigError(f"Train update_kernel = 'fused' cannot run here: {reason} "
                          f"(use auto or stock, --Train-update-kernel).")
    log.info("update_kernel auto -> stock: %s", reason)
    return "stock"


class FusedDense:
    """The model's training forward pass with fc1 reading its shadow, and fc1's fused update."""

    def __init__(self, model: keras.Model, kernel_momentum):
        self.layer = model.get_layer(FUSED_LAYER)
        self.kernel = self.layer.kernel
        self.kernel_momentum = kernel_momentum
        # The layers before fc1 run as one sub-model sharing the model's layers and weights.
        self.trunk = keras.Model(model.inputs, self.layer.input)
        self.head = model.layers[model.layers.index(self.layer) + 1:]
        self.shadow = tf.Variable(tf.zeros(self.kernel.shape, tf.bfloat16), trainable=False,
                                  name=f"{FUSED_LAYER}_kernel_bfloat16")
        self.op = native.fused_momentum_op().fused_momentum_l2_bf16

    def refresh(self) -> None:
        """Copy the kernel into the shadow (after a restore or any other outside assignment)."""
        self.shadow.assign(tf.cast(self.kernel.value, tf.bfloat16))

    def logits(self, x):
        """Return the model's training-mode logits for the batch ``x``, fc1 reading the shadow."""
        features = self.trunk(x, training=True)
        bias = tf.cast(self.layer.bias.value, features.dtype)
        # bias_add, as Keras' Dense does, so that Grappler fuses MatMul, BiasAdd and ReLU alike.
        h = self.layer.activation(tf.nn.bias_add(tf.matmul(features, self.shadow), bias))
        for layer in self.head:
            h = layer(h, training=True)
        return h

    def apply(self, shadow_gradient, learning_rate, momentum: float, weight_decay: float):
        """Step the kernel, its momentum and the shadow; return the kernel's L2 loss before the step."""
        return self.op(self.kernel.value.handle, self.kernel_momentum.value.handle, self.shadow.handle,
                       shadow_gradient, learning_rate, tf.constant(momentum, tf.float32),
                       tf.constant(weight_decay, tf.float32))
