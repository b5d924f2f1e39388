"""The training step with two compiled ops in place of the slowest stock ones, for mixed bfloat16.

A profile of the stock step (benchmarks/step_profile.py) shows two parts far slower than their
arithmetic warrants:

- fc1's 3136x512 float32 kernel, which TensorFlow's ops pass over six times a step (cast to
  bfloat16, gradient cast back, the L2 term, the gradient sum, the L2 loss, the momentum update).
  ``FusedMomentumL2Bf16`` does the same float32 arithmetic in one pass and keeps a bfloat16 copy
  ("shadow") that the forward pass multiplies with directly: the same weights bit for bit.
- conv1's backward pass (one input channel, so oneDNN's matrix units idle in its filter gradient,
  plus full-size ReluGrad and MaxPoolGrad passes). ``ConvReluPoolFilterGrad`` computes the filter
  and bias gradients of conv1 -> ReLU -> pool1 in one pass per image, summed in float32 from the
  same bfloat16 activations (with AVX512-BF16's exact pair products where the loops have them);
  the stock path rounds that gradient to bfloat16, so the two differ by bfloat16 rounding
  (tested), and a run's later weights differ accordingly.
- conv2's ReluGrad (Eigen, slow in bfloat16) and MaxPoolGrad: ``ReluPoolGrad`` does both in one
  pass, exactly (routing only copies values); oneDNN's own ops then take conv2's gradients.
- With ``kernels = winograd`` (CPUs with AVX512-BF16), conv2's three passes run in the Winograd
  domain instead (pipeline/training/winograd.py), in bfloat16 with float32 sums, and conv1's
  forward pass, ReLU and pool are ``ConvReluPool`` (one pass per image, AVX512-BF16's pair
  products) instead of oneDNN's convolution and max pool.

The forward pass is the model's own layers and values (with ``winograd``, conv1's and conv2's sums
in another order); only how the passes are computed changes.
"""

import logging

import keras
import tensorflow as tf

from pipeline.training import native
from pipeline.errors import ConfigError
from pipeline.training.config import auto_kernels
from pipeline.training.precision import cpu_flags

log = logging.getLogger(__name__)

SHADOWED_LAYER = "fc1"
FIRST_CONV, FIRST_POOL = "conv1", "pool1"


def fused_unavailable_reason(precision: str, replicas: int, loss_scaled: bool) -> str | None:
    """Return why the fused kernels cannot train this configuration here, or None when they can."""
    if precision != "mixed_bfloat16":
        return f"precision is {precision}; the fused kernels are for mixed_bfloat16"
    if replicas != 1 or loss_scaled:
        return "training is split over several devices"
    if tf.config.list_physical_devices("GPU"):
        return "a GPU holds the variables and the fused kernels run on CPUs only"
    return None


def choose_kernels(requested: str, precision: str, replicas: int, loss_scaled: bool) -> str:
    """Resolve ``kernels`` (auto | fused | winograd | stock) to the ops this run trains with.

    ``auto`` means ``config.auto_kernels`` where those apply and build, stock otherwise (logged);
    an explicit fused or winograd raises a PipelineError saying why when it cannot run.
    """
    if requested == "stock":
        return "stock"
    kind = auto_kernels(precision, cpu_flags()) if requested == "auto" else requested
    if kind == "stock":
        log.info("kernels auto -> stock: no compiled kernels for precision %s", precision)
        return "stock"
    if kind == "fused":
        reason = fused_unavailable_reason(precision, replicas, loss_scaled)
    else:
        from pipeline.training.winograd_training import winograd_unavailable_reason

        reason = winograd_unavailable_reason(precision, replicas, loss_scaled,
                                             len(tf.config.list_physical_devices("GPU")))
    if reason is None:
        try:
            ops = native.ops()
        except native.NativeBuildError as error:
            if requested == kind:
                raise
            log.warning("kernels auto -> stock: %s", error)
            return "stock"
        if kind == "winograd" and precision == "mixed_bfloat16":
            from pipeline.training.winograd_training import bfloat16_loops_built

            if not bfloat16_loops_built(ops):
                why = ("the compiled ops have no bfloat16 Winograd loops: the compiler does not target "
                       "AVX512-BF16 (g++ 10 or newer does; set CXX)")
                if requested == kind:
                    raise ConfigError(f"Train kernels = 'winograd' cannot run here: {why} "
                                      f"(use auto, fused or stock, --Train-kernels).")
                log.warning("kernels auto -> fused: %s", why)
                return "fused"
        return kind
    if requested == kind:
        fused_runs = kind == "winograd" and fused_unavailable_reason(precision, replicas, loss_scaled) is None
        alternatives = "auto, fused or stock" if fused_runs else "auto or stock"
        raise ConfigError(f"Train kernels = {kind!r} cannot run here: {reason} (use {alternatives}, --Train-kernels).")
    log.info("kernels auto -> stock: %s", reason)
    return "stock"


def _is_fusable_block(conv, pool) -> bool:
    """Return whether conv -> pool is an odd square SAME ReLU convolution with bias, then a 2x2/2 max pool."""
    if not (isinstance(conv, keras.layers.Conv2D) and isinstance(pool, keras.layers.MaxPooling2D)):
        return False
    config, pool_config = conv.get_config(), pool.get_config()
    return (config["kernel_size"][0] == config["kernel_size"][1] and config["kernel_size"][0] % 2 == 1
            and tuple(config["strides"]) == (1, 1) and tuple(config["dilation_rate"]) == (1, 1)
            and config["padding"] == "same" and config["activation"] == "relu" and config["use_bias"]
            and config["data_format"] == "channels_last" and tuple(pool_config["pool_size"]) == (2, 2)
            and tuple(pool_config["strides"]) == (2, 2) and pool_config["padding"] == "same")


def _stock_forward(x, kernel, bias):
    """Return the ReLU outputs of conv2d(x) + bias as Keras' layers compute them, and their 2x2 max pool."""
    activations = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, tf.cast(kernel, x.dtype), 1, "SAME"),
                                            tf.cast(bias, x.dtype)))
    return activations, tf.nn.max_pool2d(activations, 2, 2, "SAME")


def _conv_relu_pool(x, conv, backward, forward=_stock_forward):
    """Return max_pool(relu(conv2d(x) + bias)) as ``forward`` computes it, differentiated by ``backward``.

    ``forward(x, kernel, bias)`` returns the ReLU outputs and their pool;
    ``backward(x, kernel, bias, activations, pool_gradient)`` returns the gradients of x, kernel
    and bias, ``pool_gradient`` in x's dtype.
    """

    @tf.custom_gradient
    def block(x, kernel, bias):
        activations, pooled = forward(x, kernel, bias)

        def gradient(pool_gradient):
            return backward(x, kernel, bias, activations, tf.cast(pool_gradient, x.dtype))

        return pooled, gradient

    return block(x, conv.kernel.value, conv.bias.value)


def first_block(ops, x, conv, compiled_forward: bool = False):
    """conv -> ReLU -> pool on the input data, with ConvReluPoolFilterGrad as its whole backward pass.

    For a one-channel first layer (conv1) in bfloat16 or float32; the input is data, so it gets no
    gradient. With ``compiled_forward`` (and channels in multiples of 16), the forward pass is
    ConvReluPool: the activations and the pooled output in one pass per image instead of oneDNN's
    convolution and max pool (the same values up to the sums' order).
    """

    def backward(x, kernel, bias, activations, pool_gradient):
        kernel_gradient, bias_gradient = ops.conv_relu_pool_filter_grad(
            x, activations, pool_gradient, k=conv.kernel.shape[0])
        return None, kernel_gradient, bias_gradient

    if compiled_forward and conv.kernel.shape[3] % 16 == 0:
        return _conv_relu_pool(x, conv, backward, forward=ops.conv_relu_pool)
    return _conv_relu_pool(x, conv, backward)


class FusedTraining:
    """The model's training-mode forward pass wired to the fused ops, and fc1's fused update."""

    def __init__(self, model: keras.Model, shadowed_momentum, winograd: bool = False):
        from pipeline.training.winograd import WinogradConv
        from pipeline.training.winograd_training import is_eligible

        self.dense = model.get_layer(SHADOWED_LAYER)
        self.kernel = self.dense.kernel
        self.kernel_momentum = shadowed_momentum
        self.conv, self.pool = model.get_layer(FIRST_CONV), model.get_layer(FIRST_POOL)
        if not (_is_fusable_block(self.conv, self.pool) and self.conv.kernel.shape[2] == 1):
            raise ValueError(f"{FIRST_CONV} -> {FIRST_POOL} is not the one-channel block the fused kernels handle")
        layers = model.layers
        self.before_conv = layers[1:layers.index(self.conv)]  # layers[0] is the input
        # Later conv -> pool pairs become one block with the fused ReLU and pool gradient (the conv
        # stands for the pair); other layers run as they are.
        self.between, self.fused_blocks = [], set()
        rest = layers[layers.index(self.pool) + 1:layers.index(self.dense)]
        while rest:
            self.between.append(rest[0])
            if len(rest) > 1 and _is_fusable_block(rest[0], rest[1]):
                self.fused_blocks.add(id(rest[0]))
                rest = rest[2:]
            else:
                rest = rest[1:]
        self.after_dense = layers[layers.index(self.dense) + 1:]
        self.shadow = tf.Variable(tf.zeros(self.kernel.shape, tf.bfloat16), trainable=False,
                                  name=f"{SHADOWED_LAYER}_kernel_bfloat16")
        self.ops = native.ops()
        # With ``winograd``, each eligible later block's convolution (conv2) runs in the Winograd domain.
        self.winograd = WinogradConv(self.ops) if winograd else None
        self.winograd_blocks = {id(layer) for layer in self.between
                                if winograd and id(layer) in self.fused_blocks and is_eligible(layer, "bfloat16")}
        if winograd and not self.winograd_blocks:
            raise ConfigError("Train kernels = 'winograd' found no 5x5 bfloat16 convolution with channels in "
                              "multiples of 16 to run (use auto, fused or stock, --Train-kernels).")

    @property
    def watched(self):
        """The tensor whose gradient ``apply`` takes: the bfloat16 shadow the forward matmul reads."""
        return self.shadow

    def refresh(self) -> None:
        """Copy the kernel into the shadow (after a restore or any other outside assignment)."""
        self.shadow.assign(tf.cast(self.kernel.value, tf.bfloat16))

    def _later_block(self, x, conv):
        """conv -> ReLU -> 2x2 max pool, with ReluPoolGrad and oneDNN's convolution gradients."""

        def backward(x, kernel, bias, activations, pool_gradient):
            conv_gradient = self.ops.relu_pool_grad(activations, pool_gradient)
            compute_kernel = tf.cast(kernel, x.dtype)
            # The ops TensorFlow's own Conv2D gradient uses; Grappler fuses the filter and bias
            # gradients into one oneDNN op, as in the stock step.
            input_gradient = tf.raw_ops.Conv2DBackpropInput(
                input_sizes=tf.shape(x), filter=compute_kernel, out_backprop=conv_gradient,
                strides=[1, 1, 1, 1], padding="SAME")
            kernel_gradient = tf.raw_ops.Conv2DBackpropFilter(
                input=x, filter_sizes=tf.shape(compute_kernel), out_backprop=conv_gradient,
                strides=[1, 1, 1, 1], padding="SAME")
            bias_gradient = tf.raw_ops.BiasAddGrad(out_backprop=conv_gradient)
            return input_gradient, tf.cast(kernel_gradient, kernel.dtype), tf.cast(bias_gradient, bias.dtype)

        return _conv_relu_pool(x, conv, backward)

    def logits(self, x):
        """Return the model's training-mode logits for the batch ``x``."""
        h = x
        for layer in self.before_conv:
            h = layer(h, training=True)
        h = first_block(self.ops, h, self.conv, compiled_forward=self.winograd is not None)
        for layer in self.between:
            if id(layer) in self.winograd_blocks:
                h = self.winograd.conv_relu_pool(h, layer.kernel.value, layer.bias.value)
            elif id(layer) in self.fused_blocks:
                h = self._later_block(h, layer)
            else:
                h = layer(h, training=True)
        bias = tf.cast(self.dense.bias.value, h.dtype)
        # bias_add, as Keras' Dense does, so that Grappler fuses MatMul, BiasAdd and ReLU alike.
        h = self.dense.activation(tf.nn.bias_add(tf.matmul(h, self.shadow), bias))
        for layer in self.after_dense:
            h = layer(h, training=True)
        return h

    def apply(self, shadow_gradient, learning_rate, momentum: float, weight_decay: float):
        """Step fc1's kernel, its momentum and the shadow; return the kernel's L2 loss before the step."""
        return self.ops.fused_momentum_l2_bf16(
            self.kernel.value.handle, self.kernel_momentum.value.handle, self.shadow.handle,
            shadow_gradient, learning_rate, tf.constant(momentum, tf.float32),
            tf.constant(weight_decay, tf.float32))
