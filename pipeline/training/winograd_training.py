"""The float32 training step's forward pass wired to the compiled float32 ops (``kernels = winograd``).

- An eligible convolution (5x5, SAME, stride 1, ReLU, a bias, input and output channels in
  multiples of 16, whole vectors for the compiled ops), in this model conv2, which holds 60.2 of
  the 72.4 MFLOP of a training image, runs all three passes in the Winograd domain
  (pipeline/training/winograd.py), its bias and ReLU inside the forward op.
- Each conv -> ReLU -> 2x2 max pool block's ReLU and pool gradient is one pass (ReluPoolGrad, in
  float32: exact, routing only copies values) instead of ReluGrad and MaxPoolGrad.
- conv1 (one input channel): its forward pass, ReLU and pool are ConvReluPool (one pass per image
  instead of oneDNN's convolution and max pool); its whole backward pass is
  ConvReluPoolFilterGrad in float32 (the stock filter gradient's sums in another order).
- fc1's 3136x512 kernel, which the stock ops pass over four times a step (the L2 term's multiply,
  the gradient sum, the L2 loss, the momentum update), is stepped by FusedMomentumL2 in one pass
  with the same float32 arithmetic: the same weights bit for bit. Its input gradient is
  (W dz^T)^T: the product TensorFlow's autodiff forms, dz W^T, took 1.7x as long in oneDNN's
  float32 matmul at this shape (the step 1.07x faster in paired rounds on an AVX512-BF16 EPYC).

Every other layer runs as Keras computes it. The variables, values and schedule are untouched:
only how the passes are computed changes.
"""

import keras
import tensorflow as tf

from pipeline.errors import ConfigError
from pipeline.training import native
from pipeline.training.precision import cpu_flags
from pipeline.training.winograd import FILTER_SIZE, WinogradConv


def winograd_unavailable_reason(precision: str, replicas: int, loss_scaled: bool, gpus: int) -> str | None:
    """Return why ``kernels = winograd`` cannot train this configuration here, or None when it can."""
    if precision == "mixed_bfloat16" and "avx512_bf16" not in cpu_flags():
        return "the bfloat16 Winograd kernels need a CPU with AVX512-BF16"
    if precision not in ("float32", "mixed_bfloat16"):
        return f"precision is {precision}; the Winograd kernels are float32 or mixed_bfloat16"
    if replicas != 1 or loss_scaled:
        return "training is split over several devices"
    if gpus:
        return "a GPU holds the variables and the Winograd kernels run on CPUs only"
    return None


def bfloat16_loops_built(ops) -> bool:
    """Return whether the compiled ``ops`` hold the bfloat16 Winograd loops (their compiler targeted AVX512-BF16)."""
    zeros = tf.zeros([1, 4, 4, 16], tf.bfloat16)
    try:
        ops.winograd_filter_grad(zeros, zeros, **WinogradConv(ops).attrs)
    except tf.errors.UnimplementedError:
        return False
    return True


def is_eligible(layer, compute_dtype: str = "float32") -> bool:
    """Return whether ``layer`` is a convolution the Winograd ops compute in ``compute_dtype`` (see the module docstring)."""
    if not isinstance(layer, keras.layers.Conv2D):
        return False
    config = layer.get_config()
    return (tuple(config["kernel_size"]) == (FILTER_SIZE, FILTER_SIZE) and tuple(config["strides"]) == (1, 1)
            and tuple(config["dilation_rate"]) == (1, 1) and config["padding"] == "same"
            and config["activation"] == "relu" and config["use_bias"] and config["groups"] == 1
            and config["data_format"] == "channels_last" and layer.compute_dtype == compute_dtype
            and layer.kernel.shape[2] % 16 == 0 and layer.kernel.shape[3] % 16 == 0)


@tf.custom_gradient
def _product(x, kernel):
    """x @ kernel, whose gradient takes x's as (kernel dy^T)^T: with the kernel's transpose as the right
    operand (how TensorFlow differentiates a product), oneDNN's float32 product at fc1's shape took 1.7x
    as long as the kernel on the left and the small dy transposed."""

    def gradient(dy):
        return tf.transpose(tf.matmul(kernel, dy, transpose_b=True)), tf.matmul(x, dy, transpose_a=True)

    return tf.matmul(x, kernel), gradient


class WinogradTraining:
    """The model's training-mode forward pass with the float32 compiled ops (see the module docstring)."""

    def __init__(self, model: keras.Model, kernel_momentum):
        from pipeline.training.fused import SHADOWED_LAYER, _is_fusable_block

        self.ops = native.ops()
        self.kernel, self.kernel_momentum = model.get_layer(SHADOWED_LAYER).kernel, kernel_momentum
        self.conv = WinogradConv(self.ops)
        # A plan of (how, layers): "layer" runs a Keras layer, "winograd" an eligible conv alone,
        # "winograd_pool" and "first_pool" a conv -> pool pair with one of the fused backward passes,
        # "dense" fc1 with its input gradient as a product with an untransposed kernel.
        self.plan, layers = [], model.layers[1:]  # layers[0] is the input
        while layers:
            layer, pool = layers[0], layers[1] if len(layers) > 1 else None
            block = pool is not None and _is_fusable_block(layer, pool) and layer.compute_dtype == "float32"
            if block and is_eligible(layer):
                self.plan.append(("winograd_pool", layer))
            elif block and layer.kernel.shape[2] == 1 and not any(done.trainable_weights for _, done in self.plan):
                # Only before any trainable layer: this backward pass returns no input gradient.
                self.plan.append(("first_pool", layer))
            elif is_eligible(layer):
                self.plan.append(("winograd", layer))
            elif layer.name == SHADOWED_LAYER and isinstance(layer, keras.layers.Dense) and layer.use_bias:
                self.plan.append(("dense", layer))
            else:
                self.plan.append(("layer", layer))
            layers = layers[2:] if self.plan[-1][0].endswith("_pool") else layers[1:]
        if not any(how.startswith("winograd") for how, _ in self.plan):
            raise ConfigError("Train kernels = 'winograd' found no 5x5 float32 convolution with channels in "
                              "multiples of 16 to run (use auto or stock, --Train-kernels).")

    @property
    def watched(self):
        """The variable whose gradient ``apply`` takes: fc1's kernel (TensorFlow's variable under Keras')."""
        return self.kernel.value

    def refresh(self) -> None:
        """Nothing to copy: the forward pass reads the kernel itself."""
        # A statement besides the docstring: AutoGraph cannot convert a body that is only a docstring
        # and would warn on every run.
        return None

    def apply(self, kernel_gradient, learning_rate, momentum: float, weight_decay: float):
        """Step fc1's kernel and its momentum; return the kernel's L2 loss before the step."""
        return self.ops.fused_momentum_l2(
            self.kernel.value.handle, self.kernel_momentum.value.handle, kernel_gradient, learning_rate,
            tf.constant(momentum, tf.float32), tf.constant(weight_decay, tf.float32))

    def logits(self, x):
        """Return the model's training-mode logits for the batch ``x``."""
        from pipeline.training.fused import first_block

        h = x
        for how, layer in self.plan:
            if how == "winograd_pool":
                h = self.conv.conv_relu_pool(h, layer.kernel.value, layer.bias.value)
            elif how == "first_pool":
                h = first_block(self.ops, h, layer, compiled_forward=True)
            elif how == "winograd":
                h = self.conv.conv(h, layer.kernel.value, layer.bias.value, relu=True)
            elif how == "dense":
                h = layer.activation(tf.nn.bias_add(_product(h, layer.kernel.value), layer.bias.value))
            else:
                h = layer(h, training=True)
        return h
