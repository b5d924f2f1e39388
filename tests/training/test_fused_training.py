"""The compiled fused ops: TensorFlow's arithmetic, safe writes, the same training, clear failures."""

import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from pipeline.data import synthetic
from pipeline.training import native
from pipeline.training.config import TrainingConfig, auto_kernels
from pipeline.errors import ConfigError, PipelineError
from pipeline.training.fused import choose_kernels
from pipeline.training.loop import Trainer, train_model
from pipeline.training.precision import cpu_flags

LR, MOMENTUM, DECAY = 0.01, 0.9, 5e-4


def random_state(shape=(300, 70), seed=0):
    """Return (weights, momentum, bfloat16 gradient) with an odd size (a partial block and tail)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.1, shape).astype(np.float32), rng.normal(0, 0.01, shape).astype(np.float32),
            tf.constant(rng.normal(0, 0.01, shape), tf.bfloat16))


def stock_update(weights, momentum, gradient):
    """Return (weights, momentum, bfloat16 weights, L2 loss) from TensorFlow's separate ops."""
    w, m = tf.Variable(weights), tf.Variable(momentum)
    l2_loss = float(tf.nn.l2_loss(w))
    tf.raw_ops.ResourceApplyKerasMomentum(
        var=w.handle, accum=m.handle, lr=tf.constant(LR), grad=tf.cast(gradient, tf.float32) + DECAY * w,
        momentum=tf.constant(MOMENTUM), use_nesterov=False)
    return w.numpy(), m.numpy(), tf.cast(w, tf.bfloat16), l2_loss


def fused(weights, momentum, gradient):
    """Return the three variables after one fused update, and the op's L2 loss."""
    w, m = tf.Variable(weights), tf.Variable(momentum)
    shadow = tf.Variable(tf.cast(weights, tf.bfloat16))
    l2_loss = native.ops().fused_momentum_l2_bf16(w.handle, m.handle, shadow.handle, gradient,
                                                                 LR, MOMENTUM, DECAY)
    return w, m, shadow, float(l2_loss)


def test_fused_update_is_tensorflows_arithmetic_bit_for_bit():
    weights, momentum, gradient = random_state()
    expected_w, expected_m, expected_shadow, expected_loss = stock_update(weights, momentum, gradient)
    w, m, shadow, l2_loss = fused(weights, momentum, gradient)
    np.testing.assert_array_equal(w.numpy(), expected_w)
    np.testing.assert_array_equal(m.numpy(), expected_m)
    np.testing.assert_array_equal(tf.bitcast(shadow.value(), tf.uint16), tf.bitcast(expected_shadow, tf.uint16))
    assert l2_loss == pytest.approx(expected_loss, rel=1e-6)


def test_float32_fused_update_is_tensorflows_arithmetic_bit_for_bit():
    """FusedMomentumL2 (kernels = winograd) against the float32 ops the stock step runs."""
    weights, momentum, gradient = random_state()
    gradient = tf.cast(gradient, tf.float32) * 1.37  # float32 values that bfloat16 cannot hold
    expected_w, expected_m, _, expected_loss = stock_update(weights, momentum, gradient)
    w, m = tf.Variable(weights), tf.Variable(momentum)
    l2_loss = float(native.ops().fused_momentum_l2(w.handle, m.handle, gradient, LR, MOMENTUM, DECAY))
    np.testing.assert_array_equal(w.numpy(), expected_w)
    np.testing.assert_array_equal(m.numpy(), expected_m)
    assert l2_loss == pytest.approx(expected_loss, rel=1e-6)


def test_a_read_still_held_keeps_its_values():
    """Copy on write: a tensor read before the update must not change under its holder."""
    weights, momentum, gradient = random_state(seed=1)
    w, m = tf.Variable(weights), tf.Variable(momentum)
    shadow = tf.Variable(tf.cast(weights, tf.bfloat16))
    held_w, held_shadow = w.value(), shadow.value()
    native.ops().fused_momentum_l2_bf16(w.handle, m.handle, shadow.handle, gradient,
                                                       LR, MOMENTUM, DECAY)
    np.testing.assert_array_equal(held_w.numpy(), weights)
    np.testing.assert_array_equal(tf.cast(held_shadow, tf.float32), tf.cast(tf.cast(weights, tf.bfloat16), tf.float32))
    assert not np.array_equal(w.numpy(), weights)


def test_mismatched_shapes_are_refused_with_the_shapes():
    weights, momentum, gradient = random_state()
    w, m = tf.Variable(weights), tf.Variable(momentum)
    shadow = tf.Variable(tf.zeros((3, 3), tf.bfloat16))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[3,3\]"):
        native.ops().fused_momentum_l2_bf16(w.handle, m.handle, shadow.handle, gradient,
                                                           LR, MOMENTUM, DECAY)


@pytest.fixture(scope="module")
def pattern():
    return synthetic.pattern_arrays(320, seed=1), synthetic.pattern_arrays(64, seed=2)


def test_fused_training_steps_like_stock(pattern):
    """One step: every weight the same bits except conv1's (its gradient is not rounded to
    bfloat16); a few more steps, after an outside assignment: still close everywhere."""
    train, _ = pattern

    def trainer(kernels):
        made = Trainer(train, TrainingConfig(precision="mixed_bfloat16", kernels=kernels))
        assert made.kernels == kernels
        return made

    initial = trainer("stock").model.get_weights()
    stock, fused = trainer("stock"), trainer("fused")
    order = stock.epoch_order(0)
    for made in (stock, fused):
        made.run_steps(order, 0, 1)
    for weight, w0, a, b in zip(stock.model.weights, initial, stock.model.get_weights(), fused.model.get_weights()):
        if weight.path.startswith("conv1/"):
            # The fused op sums conv1's gradient in float32 (checked against float64 in
            # test_first_block_gradient_is_the_exact_sum_to_float32_rounding); how close the stock
            # op's bfloat16 sum comes depends on the CPU. With AMX it was within 1e-4 of the weight;
            # on an AMD EPYC without native bfloat16, stock sums conv1's ~50,000 bias terms in
            # bfloat16, and the two updates differ by 0.8% (kernel) and 5.3% (bias) in norm.
            stock_update, fused_update = a - w0, b - w0
            difference = np.linalg.norm(fused_update - stock_update) / np.linalg.norm(stock_update)
            assert difference < 0.1, f"{weight.path}: the updates differ by {difference:.1%} in norm"
        else:
            np.testing.assert_array_equal(b, a, err_msg=weight.path)
    losses = []
    for made in (stock, fused):
        # As a checkpoint restore does between calls; the fused step must pick it up.
        kernel = made.model.get_layer("fc1").kernel
        kernel.assign(kernel.value * 0.5)
        losses.append(made.run_steps(order, 1, 3))
    for a, b in zip(stock.model.get_weights(), fused.model.get_weights()):
        np.testing.assert_allclose(b, a, atol=0.02)
    np.testing.assert_allclose(losses[1], losses[0], rtol=0.05)


def first_block_reference(x, kernel, bias, upstream):
    """Return the activations and the exact (float64) conv1 filter and bias gradients.

    TensorFlow's own MaxPoolGrad routes the pool gradient (a copy, so exact) and decides ties;
    the sums are then taken in float64, against which both TensorFlow's bfloat16 sums and the
    fused op's float32 sums are approximations.
    """
    k = kernel.shape[0]
    with tf.GradientTape() as tape:
        activations = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, tf.cast(kernel, x.dtype), 1, "SAME"),
                                                tf.cast(bias, x.dtype)))
        tape.watch(activations)
        loss = tf.reduce_sum(tf.cast(tf.nn.max_pool2d(activations, 2, 2, "SAME") * upstream, tf.float32))
    routed = tape.gradient(loss, activations).numpy().astype(np.float64)
    conv_gradient = routed * (activations.numpy().astype(np.float64) > 0)
    pad = (k - 1) // 2
    padded = np.pad(x.numpy().astype(np.float64)[..., 0], ((0, 0), (pad, pad), (pad, pad)))
    height, width = x.shape[1:3]
    kernel_gradient = np.zeros((k, k, 1, conv_gradient.shape[-1]))
    for kh in range(k):
        for kw in range(k):
            window = padded[:, kh:kh + height, kw:kw + width]
            kernel_gradient[kh, kw, 0] = np.einsum("nhw,nhwc->c", window, conv_gradient)
    return activations, kernel_gradient, conv_gradient.sum(axis=(0, 1, 2))


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float32], ids=["bfloat16", "float32"])
@pytest.mark.parametrize("image, channels, k", [((10, 12), 32, 5), ((9, 11), 32, 5), ((9, 11), 8, 3)],
                         ids=["model-shape", "odd-size-model-channels", "odd-size-general-path"])
def test_first_block_gradient_is_the_exact_sum_to_float32_rounding(image, channels, k, dtype):
    """The fused conv1 -> ReLU -> pool1 gradient, with ties in the pool windows forced."""
    rng = np.random.default_rng(3)
    # Pixels from a few levels, so that windows hold equal values (ties) and zeros after ReLU.
    x = tf.cast(rng.integers(0, 4, (6, *image, 1)) / 4 - 0.5, dtype)
    kernel = tf.constant(rng.normal(0, 0.3, (k, k, 1, channels)).astype(np.float32))
    bias = tf.constant(rng.normal(0, 0.1, channels).astype(np.float32))
    pooled = ((image[0] + 1) // 2, (image[1] + 1) // 2)
    upstream = tf.cast(rng.normal(0, 1, (6, *pooled, channels)), dtype)
    activations, expected_kernel, expected_bias = first_block_reference(x, kernel, bias, upstream)
    kernel_gradient, bias_gradient = native.ops().conv_relu_pool_filter_grad(x, activations, upstream, k=k)
    for got, expected in ((kernel_gradient, expected_kernel), (bias_gradient, expected_bias)):
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float32], ids=["bfloat16", "float32"])
@pytest.mark.parametrize("image, channels, k", [((28, 28), 32, 5), ((7, 9), 48, 5), ((9, 11), 16, 3)],
                         ids=["model-shape", "odd-size-16-channel-tail", "odd-size-general-path"])
def test_first_block_forward_is_the_convolution_and_its_pool(image, channels, k, dtype):
    """ConvReluPool against a float64 convolution of the same (rounded) operands: the sums within
    float32 rounding, the activations within one rounding to the dtype, the pool exactly theirs."""
    rng = np.random.default_rng(7)
    x = tf.cast(rng.uniform(0, 1, (3, *image, 1)), dtype)
    kernel = rng.normal(0, 0.3, (k, k, 1, channels)).astype(np.float32)
    bias = rng.normal(0, 0.1, channels).astype(np.float32)
    if dtype == tf.bfloat16 and "avx512_bf16" not in cpu_flags():
        with pytest.raises(tf.errors.UnimplementedError, match="AVX512-BF16.*kernels fused or stock"):
            native.ops().conv_relu_pool(x, kernel, bias)
        return
    activations, pooled = native.ops().conv_relu_pool(x, kernel, bias)
    as_float64 = lambda t: tf.cast(tf.cast(t, dtype), tf.float64)  # the operands as the op rounds them
    exact = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(as_float64(x), as_float64(kernel), 1, "SAME"),
                                      as_float64(bias))).numpy()
    rounding = 2.0 ** -8 if dtype == tf.bfloat16 else 2.0 ** -23
    np.testing.assert_allclose(tf.cast(activations, tf.float64).numpy(), exact, rtol=rounding,
                               atol=1e-6 * np.abs(exact).max())
    np.testing.assert_array_equal(tf.cast(pooled, tf.float32), tf.cast(tf.nn.max_pool2d(activations, 2, 2, "SAME"),
                                                                        tf.float32))


def test_first_block_forward_refuses_channels_that_are_not_whole_vectors():
    x = tf.zeros((1, 8, 8, 1))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"C a multiple of 16.*\[5,5,1,8\]"):
        native.ops().conv_relu_pool(x, np.zeros((5, 5, 1, 8), np.float32), np.zeros(8, np.float32))


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float32], ids=["bfloat16", "float32"])
@pytest.mark.parametrize("image, channels", [((14, 14), 64), ((14, 14), 32), ((9, 11), 8)],
                         ids=["conv2-shape", "32-channels", "odd-size-general-path"])
def test_relu_pool_gradient_equals_tensorflows(image, channels, dtype):
    """ReluPoolGrad against TensorFlow's MaxPoolGrad then ReluGrad, with ties and -0 (oneDNN's
    ReLU output for negative inputs) forced."""
    rng = np.random.default_rng(5)
    values = rng.integers(-2, 4, (5, *image, channels)) / 4
    y = np.maximum(values, 0).astype(np.float32)
    y[values < 0] = -0.0
    y = tf.cast(y, dtype)
    pooled = tf.nn.max_pool2d(y, 2, 2, "SAME")
    upstream = tf.cast(rng.normal(0, 1, pooled.shape), dtype)
    routed = tf.raw_ops.MaxPoolGrad(orig_input=y, orig_output=pooled, grad=upstream, ksize=[1, 2, 2, 1],
                                    strides=[1, 2, 2, 1], padding="SAME")
    expected = tf.raw_ops.ReluGrad(gradients=routed, features=y)
    got = native.ops().relu_pool_grad(y, upstream)
    # Equal values; the sign of zero may differ (ReluGrad multiplies by 0, giving -0 for negative
    # gradients), which no later sum can see.
    np.testing.assert_array_equal(tf.cast(got, tf.float32), tf.cast(expected, tf.float32))


def test_history_names_the_kernels(pattern, tmp_path):
    train, validation = pattern
    _, history = train_model(train, validation, TrainingConfig(epochs=1, precision="mixed_bfloat16"), tmp_path)
    assert history[0]["kernels"] == auto_kernels("mixed_bfloat16", cpu_flags())
    _, history = train_model(train, validation, TrainingConfig(epochs=1, precision="float32"), tmp_path / "f32")
    assert history[0]["kernels"] == "winograd"


def test_auto_uses_stock_where_no_compiled_kernels_apply(caplog):
    with caplog.at_level(logging.INFO):
        assert choose_kernels("auto", "mixed_float16", 1, False) == "stock"
    assert "no compiled kernels for precision mixed_float16" in caplog.text
    assert choose_kernels("auto", "float32", 1, False) == "winograd"
    assert choose_kernels("auto", "float32", 2, False) == "stock"
    assert choose_kernels("auto", "mixed_bfloat16", 2, False) == "stock"
    assert choose_kernels("stock", "mixed_bfloat16", 1, False) == "stock"
    assert choose_kernels("auto", "mixed_bfloat16", 1, False) == auto_kernels("mixed_bfloat16", cpu_flags())


def test_fused_where_it_cannot_run_says_why():
    with pytest.raises(ConfigError, match="precision is float32.*--Train-kernels"):
        choose_kernels("fused", "float32", 1, False)


@pytest.fixture
def no_compiler(monkeypatch, tmp_path):
    """A machine without a C++ compiler and without a built op (the op cache is restored after)."""
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv(native.CACHE_ENV, str(tmp_path / "kernels"))
    native.ops.cache_clear()
    yield
    native.ops.cache_clear()


def test_without_a_compiler_auto_falls_back_and_fused_explains(no_compiler, caplog):
    with caplog.at_level(logging.WARNING):
        assert choose_kernels("auto", "mixed_bfloat16", 1, False) == "stock"
    assert "no working C++ compiler" in caplog.text
    with pytest.raises(PipelineError, match="install g\\+\\+.*--Train-kernels stock"):
        choose_kernels("fused", "mixed_bfloat16", 1, False)


def test_a_failed_build_shows_the_compiler_output_and_leaves_nothing(no_compiler, monkeypatch, tmp_path):
    broken = tmp_path / "broken-compiler"
    broken.write_text("#!/bin/sh\n[ \"$1\" = --version ] && exit 0\necho 'fatal: out of disk' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CXX", str(broken))
    with pytest.raises(PipelineError, match="(?s)exit 1.*fatal: out of disk.*--Train-kernels stock"):
        native.ops()
    built = [p for p in (tmp_path / "kernels").rglob("*") if p.is_file()]
    assert built == []


def test_an_unwritable_cache_is_named_with_the_fix(no_compiler, monkeypatch, tmp_path):
    monkeypatch.delenv("CXX")
    blocked = tmp_path / "read-only"
    blocked.write_text("a file where the cache directory should be")
    monkeypatch.setenv(native.CACHE_ENV, str(blocked / "kernels"))
    with pytest.raises(PipelineError, match=f"{blocked}.*Set {native.CACHE_ENV} to a writable directory"):
        native.ops()


def test_without_a_compiler_a_library_built_before_for_this_machine_is_loaded(tmp_path):
    """The image's runtime stage has no compiler: it loads what its build stage compiled."""
    built = native.library_path()
    native.ops()  # built in the default cache, if no other test built it yet
    cache = tmp_path / "kernels"
    shutil.copytree(built.parent.parent, cache / built.parent.parent.name)
    script = ("import logging; logging.basicConfig(level=logging.INFO); "
              "from pipeline.training import native; native.ops(); print('loaded')")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "CXX": str(tmp_path / "no-such-compiler"),
                                 native.CACHE_ENV: str(cache)})
    assert result.returncode == 0 and "loaded" in result.stdout, result.stderr
    assert "Using the fused training ops built before for this machine" in result.stderr
    assert "Building" not in result.stderr
