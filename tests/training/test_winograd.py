"""conv2 in the Winograd domain: exact transforms, float32 errors within stated bounds, the same training."""

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO_ROOT, cli_env
from pipeline.data import synthetic
from pipeline.errors import ConfigError
from pipeline.results.inference import error_rate
from pipeline.training import native, winograd
from pipeline.training.config import TrainingConfig
from pipeline.training.fused import choose_kernels
from pipeline.training.loop import Trainer, train_model
from pipeline.training.model import make_model
from pipeline.training.precision import cpu_flags
from pipeline.training.winograd_training import WinogradTraining

# The largest error of each pass against the float64 direct convolution, relative to the largest
# magnitude of the exact result. docs/benchmarks.md gives the measured values at conv2's shape
# (F(4x4,5x5), the one training uses: 4.9e-6, 7.0e-6, 8.8e-6; F(2x2,5x5)'s filter gradient 1.3e-5;
# oneDNN's direct float32 convolution 0.7e-6 to 1.5e-6): float32 rounding times the transforms'
# growth, far below what training can see.
FLOAT32_BOUND = 5e-5
# In bfloat16 the transformed operands are rounded to 8 significant bits before they are
# multiplied: measured at conv2's shape 6.1e-2 to 7.5e-2 of the largest exact value (3.7e-2 to
# 4.4e-2 of its RMS), against 2.8e-3 to 3.8e-3 for oneDNN's direct bfloat16 convolution
# (docs/benchmarks.md). A wrong pairing of channels or tiles gives errors of order 1.
BFLOAT16_BOUND = 1e-1
# The bfloat16 loops need AVX512-BF16. On a CPU without it, each bfloat16 test checks instead that
# the ops (or the training) refuse with one line naming the alternatives.
HAS_AVX512_BF16 = "avx512_bf16" in cpu_flags()


def assert_bfloat16_ops_refused(call):
    with pytest.raises(tf.errors.UnimplementedError, match="AVX512-BF16.*kernels fused or stock"):
        call()


@pytest.mark.parametrize("m", sorted(winograd.POINTS))
def test_transforms_are_an_exact_identity_in_float64(m):
    at, g, bt = winograd.transforms(m)
    rng = np.random.default_rng(m)
    tile, kernel = rng.normal(size=(m + 4, m + 4)), rng.normal(size=(5, 5))
    got = at @ ((g @ kernel @ g.T) * (bt @ tile @ bt.T)) @ at.T
    expected = np.array([[np.sum(tile[i:i + 5, j:j + 5] * kernel) for j in range(m)] for i in range(m)])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_unknown_tile_sizes_are_refused():
    with pytest.raises(ValueError, match="tile sides"):
        winograd.transforms(5)


def filter_gradient_reference(x, dy, size=5):
    """Return sum over images and positions of padded x windows times dy, in float64 (HWIO)."""
    pad = size // 2
    padded = np.pad(x.astype(np.float64), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    height, width = x.shape[1:3]
    return np.stack([np.stack([np.einsum("nhwc,nhwk->ck", padded[:, i:i + height, j:j + width], dy)
                               for j in range(size)]) for i in range(size)])


def relative_error(got, expected):
    return float(np.abs(np.asarray(got, np.float64) - expected).max() / np.abs(expected).max())


@pytest.mark.parametrize("m", sorted(winograd.POINTS))
@pytest.mark.parametrize("shape", [(9, 14, 14, 32, 64), (3, 9, 11, 16, 32)], ids=["conv2", "odd-size"])
def test_each_pass_is_within_the_float32_bound_of_the_float64_direct_convolution(m, shape):
    images, height, width, channels, filters = shape
    rng = np.random.default_rng(7)
    x = rng.normal(size=(images, height, width, channels)).astype(np.float32)
    kernel = rng.normal(0, 0.1, (5, 5, channels, filters)).astype(np.float32)
    dy = rng.normal(size=(images, height, width, filters)).astype(np.float32)
    conv = winograd.WinogradConv(native.ops(), m)
    forward = conv.forward(tf.constant(x), tf.constant(kernel), tf.zeros([filters]), relu=False)
    input_gradient, kernel_gradient, bias_gradient = conv.backward(tf.constant(x), tf.constant(kernel),
                                                                   tf.constant(dy))
    rotated = np.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))
    assert relative_error(forward, winograd.reference_conv(x, kernel)) < FLOAT32_BOUND
    assert relative_error(input_gradient, winograd.reference_conv(dy, rotated)) < FLOAT32_BOUND
    assert relative_error(kernel_gradient, filter_gradient_reference(x, dy)) < FLOAT32_BOUND
    assert relative_error(bias_gradient, dy.astype(np.float64).sum((0, 1, 2))) < 1e-6


@pytest.mark.parametrize("shape", [(9, 14, 14, 32, 64), (3, 9, 11, 16, 32)], ids=["conv2", "odd-size"])
def test_each_bfloat16_pass_is_within_its_bound_of_the_float64_direct_convolution(shape):
    images, height, width, channels, filters = shape
    rng = np.random.default_rng(7)
    x = tf.cast(rng.normal(size=(images, height, width, channels)), tf.bfloat16)
    kernel = rng.normal(0, 0.1, (5, 5, channels, filters)).astype(np.float32)
    dy = tf.cast(rng.normal(size=(images, height, width, filters)), tf.bfloat16)
    conv = winograd.WinogradConv(native.ops())
    bias = tf.constant(rng.normal(0, 0.5, filters), tf.float32)
    if not HAS_AVX512_BF16:
        assert_bfloat16_ops_refused(lambda: conv.forward(x, tf.constant(kernel), bias, relu=False))
        assert_bfloat16_ops_refused(lambda: native.ops().winograd_filter_grad(x, dy, **conv.attrs))
        return
    forward = conv.forward(x, tf.constant(kernel), bias, relu=False)
    input_gradient, kernel_gradient, bias_gradient = conv.backward(x, tf.constant(kernel), dy)
    assert (forward.dtype, input_gradient.dtype, kernel_gradient.dtype) == (tf.bfloat16, tf.bfloat16, tf.float32)
    # The bias gradient sums the bfloat16 values exactly as they are, in float32.
    assert relative_error(bias_gradient, tf.cast(dy, tf.float64).numpy().sum((0, 1, 2))) < 1e-6
    # The references take the same bfloat16 inputs exactly, in float64.
    x64, dy64 = (tf.cast(t, tf.float64).numpy() for t in (x, dy))
    rotated = np.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))
    errors = [relative_error(tf.cast(forward, tf.float32), winograd.reference_conv(x64, kernel) + bias.numpy()),
              relative_error(tf.cast(input_gradient, tf.float32), winograd.reference_conv(dy64, rotated)),
              relative_error(kernel_gradient, filter_gradient_reference(x64, dy64))]
    assert max(errors) < BFLOAT16_BOUND, errors
    # Rounding, not a mistake: each pass is far closer than unrelated values would be.
    assert min(errors) > 1e-3, "bfloat16 operands should round visibly; are the float32 loops running?"


def test_bias_and_relu_are_applied_in_the_forward_op():
    rng = np.random.default_rng(8)
    x = tf.constant(rng.normal(size=(2, 14, 14, 32)), tf.float32)
    kernel = tf.constant(rng.normal(0, 0.1, (5, 5, 32, 64)), tf.float32)
    bias = tf.constant(rng.normal(0, 0.5, 64), tf.float32)
    got = winograd.WinogradConv(native.ops()).forward(x, kernel, bias, relu=True)
    expected = np.maximum(winograd.reference_conv(x.numpy(), kernel.numpy()) + bias.numpy(), 0)
    assert relative_error(got, expected) < FLOAT32_BOUND


# WinogradFilterGrad in a process of its own with ``threads`` intra-op threads, on the float32
# values of x and dy cast to the dtype (exact: bfloat16 values are float32 values).
THREADS_SCRIPT = """
import sys
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[2]))
from pipeline.training import native, winograd
arrays = np.load(sys.argv[1])
dtype = getattr(tf, sys.argv[3])
x, dy = (tf.cast(arrays[name], dtype) for name in ("x", "dy"))
du, db = native.ops().winograd_filter_grad(x, dy, **winograd.WinogradConv(native.ops()).attrs)
np.savez(sys.argv[4], du=du.numpy(), db=db.numpy())
"""


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16], ids=["float32", "bfloat16"])
def test_the_filter_gradient_does_not_depend_on_the_number_of_threads(dtype, tmp_path):
    """Chunks of images are summed in a fixed order: 1, 3 and this process's threads, the same bits (exact resume)."""
    rng = np.random.default_rng(9)
    x = tf.cast(rng.normal(size=(40, 14, 14, 32)), dtype)
    dy = tf.cast(rng.normal(size=(40, 14, 14, 64)), dtype)
    conv = winograd.WinogradConv(native.ops())
    if dtype == tf.bfloat16 and not HAS_AVX512_BF16:
        assert_bfloat16_ops_refused(lambda: native.ops().winograd_filter_grad(x, dy, **conv.attrs))
        return
    whole = [t.numpy() for t in native.ops().winograd_filter_grad(x, dy, **conv.attrs)]
    chunks = [native.ops().winograd_filter_grad(x[i:i + 8], dy[i:i + 8], **conv.attrs) for i in range(0, 40, 8)]
    for output, got in enumerate(whole):
        parts = sum(chunk[output].numpy().astype(np.float64) for chunk in chunks)
        np.testing.assert_allclose(got, parts, rtol=1e-5, atol=1e-5 * np.abs(parts).max())
    np.savez(tmp_path / "inputs.npz", x=tf.cast(x, tf.float32).numpy(), dy=tf.cast(dy, tf.float32).numpy())
    for threads in (1, 3):
        result = tmp_path / f"threads{threads}.npz"
        subprocess.run([sys.executable, "-c", THREADS_SCRIPT, str(tmp_path / "inputs.npz"), str(threads), dtype.name,
                        str(result)], cwd=REPO_ROOT, env=cli_env(), check=True, capture_output=True, timeout=300)
        again = np.load(result)
        np.testing.assert_array_equal(whole[0], again["du"])
        np.testing.assert_array_equal(whole[1], again["db"])


def build_loops(target, *flags):
    """Compile winograd_loop.cc alone into ``target`` (it has no TensorFlow headers) and load it."""
    import ctypes

    source = Path(native.__file__).parent / "kernels" / "winograd_loop.cc"
    subprocess.run([native.compiler(), *native.LOOP_FLAGS, *flags, "-shared", str(source), "-o", str(target)],
                   check=True)
    library = ctypes.CDLL(str(target))
    library.lenet_winograd_scratch.restype = ctypes.c_int64
    return library


def test_the_loops_give_the_same_bits_with_256_and_512_bit_vectors(tmp_path):
    # Where the host has AVX-512, -march=native builds the 512-bit loops and -mno-avx512f the
    # 256-bit ones; elsewhere both are 256-bit. 48 filters leave a 16-column tail at 512 bits.
    import ctypes

    def run(library, x, u, dy):
        images, height, width, channels = x.shape
        filters = u.shape[2]
        scratch = np.zeros(library.lenet_winograd_scratch(4, 8, channels, filters), np.float32)
        y = np.zeros((images, height, width, filters), np.float32)
        du, db = np.zeros((64, channels, filters), np.float32), np.zeros(filters, np.float32)
        pointer = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
        sizes = [ctypes.c_int64(v) for v in (images, height, width, channels, filters, 4, 8)]
        library.lenet_winograd_forward(*sizes, pointer(x), pointer(u),
                                       pointer(np.ones(filters, np.float32)), ctypes.c_int(1), pointer(y),
                                       pointer(scratch))
        library.lenet_winograd_filter_grad(*sizes, pointer(x), pointer(dy), pointer(du), pointer(db),
                                           pointer(scratch))
        return y, du, db

    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 14, 14, 32)).astype(np.float32)
    u = rng.normal(size=(64, 32, 48)).astype(np.float32)
    dy = rng.normal(size=(5, 14, 14, 48)).astype(np.float32)
    native_width = run(build_loops(tmp_path / "native.so"), x, u, dy)
    narrow = run(build_loops(tmp_path / "narrow.so", "-mno-avx512f"), x, u, dy)
    for a, b in zip(native_width, narrow, strict=True):
        assert np.abs(a).max() > 0
        np.testing.assert_array_equal(a, b)


def test_shapes_the_ops_cannot_take_are_refused_with_the_shapes():
    conv = winograd.WinogradConv(native.ops())
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiples of 16"):
        native.ops().winograd_conv2d(tf.zeros([1, 8, 8, 3]), tf.zeros([64, 3, 16]), tf.zeros([0]), **conv.attrs)


@pytest.mark.parametrize("matrix", ["bt", "at"])
def test_transforms_other_than_the_compiled_ones_are_refused(matrix):
    # The loops compile Bt and At in; the attributes must be winograd.transforms', or nothing runs.
    attrs = dict(winograd.WinogradConv(native.ops()).attrs)
    attrs[matrix] = [value * 1.001 for value in attrs[matrix]]
    with pytest.raises(tf.errors.InvalidArgumentError, match="not the transforms compiled in for F\\(4x4,5x5\\)"):
        native.ops().winograd_conv2d(tf.zeros([1, 8, 8, 16]), tf.zeros([64, 16, 16]), tf.zeros([0]), **attrs)
    with pytest.raises(tf.errors.InvalidArgumentError, match="not the transforms compiled in"):
        native.ops().winograd_filter_grad(tf.zeros([1, 8, 8, 16]), tf.zeros([1, 8, 8, 16]), **attrs)


def test_the_training_step_computes_the_stock_gradients():
    """The whole model without dropout: every variable's gradient as the stock step gives it."""
    keras_seed = 5
    tf.keras.utils.set_random_seed(keras_seed)
    model = make_model(dropout=0.0)
    images, labels = synthetic.pattern_arrays(32, seed=3)
    x = tf.constant(images[..., None], tf.float32)
    y = tf.constant(labels, tf.int32)

    def gradients(logits_of):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits_of(x)))
        return tape.gradient(loss, model.trainable_variables)

    stock = gradients(lambda batch: model(batch, training=True))
    ours = gradients(WinogradTraining(model, kernel_momentum=None).logits)
    for variable, a, b in zip(model.trainable_variables, stock, ours, strict=True):
        assert relative_error(b.numpy(), a.numpy().astype(np.float64)) < 1e-4, variable.path


@pytest.fixture(scope="module")
def pattern():
    return synthetic.pattern_arrays(640, seed=1), synthetic.pattern_arrays(200, seed=2)


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_winograd_training_learns_the_pattern_and_resumes_bit_for_bit(pattern, tmp_path, precision):
    train, validation = pattern
    config = TrainingConfig(epochs=3, precision=precision, kernels="winograd")
    if precision == "mixed_bfloat16" and not HAS_AVX512_BF16:
        with pytest.raises(ConfigError, match="need a CPU with AVX512-BF16"):
            train_model(train, validation, config, tmp_path / "straight")
        return
    straight, history = train_model(train, validation, config, tmp_path / "straight")
    assert history[-1]["kernels"] == "winograd"
    assert error_rate(straight, *validation) == 0.0
    train_model(train, validation, TrainingConfig(epochs=1, precision=precision, kernels="winograd"),
                tmp_path / "resumed")
    resumed, resumed_history = train_model(train, validation, config, tmp_path / "resumed")
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [r["train_loss"] for r in history] == [r["train_loss"] for r in resumed_history]


def test_autograph_converts_every_method_the_compiled_step_calls():
    # AutoGraph warns once per process ("could not transform ... Please report this to the
    # TensorFlow team") for a method it cannot convert, so convert each one here directly.
    from pipeline.training.fused import FusedTraining

    for method in (WinogradTraining.refresh, WinogradTraining.apply, WinogradTraining.logits,
                   FusedTraining.refresh, FusedTraining.apply, FusedTraining.logits):
        tf.autograph.to_graph(method)


def test_winograd_where_it_cannot_run_says_why_in_one_line(monkeypatch):
    from pipeline.training import winograd_training

    with pytest.raises(ConfigError, match="precision is mixed_float16.*--Train-kernels") as error:
        choose_kernels("winograd", "mixed_float16", 1, False)
    assert "\n" not in str(error.value)
    monkeypatch.setattr(winograd_training, "cpu_flags", lambda: ["avx2", "avx512f"])
    with pytest.raises(ConfigError, match=r"need a CPU with AVX512-BF16 \(use auto, fused or stock, --Train-kernels\)\.$"):
        choose_kernels("winograd", "mixed_bfloat16", 1, False)
    with pytest.raises(ConfigError, match="split over several devices"):
        choose_kernels("winograd", "float32", 2, False)


def test_auto_picks_winograd_for_float32_on_one_cpu(caplog):
    with caplog.at_level(logging.INFO):
        trainer = Trainer(synthetic.pattern_arrays(64, seed=1), TrainingConfig(precision="float32"))
    assert trainer.kernels == "winograd"


FALLBACK_SCRIPT = """
import logging
from pipeline.errors import ConfigError
from pipeline.training import fused, winograd_training
from pipeline.training.precision import cpu_flags

logging.basicConfig(level=logging.WARNING)
# A CPU with AVX512-BF16 and no AMX, whatever this one is.
flags = lambda: [*(flag for flag in cpu_flags() if not flag.startswith("amx")), "avx512_bf16"]
fused.cpu_flags = winograd_training.cpu_flags = flags
print("auto", fused.choose_kernels("auto", "mixed_bfloat16", 1, False))
try:
    fused.choose_kernels("winograd", "mixed_bfloat16", 1, False)
except ConfigError as error:
    print("explicit:", error)
"""


def test_ops_built_without_the_bfloat16_loops_fall_back_to_fused_or_say_why(tmp_path):
    """A CPU with AVX512-BF16 but a compiler that does not target it: auto trains with fused.

    In a process of its own: TensorFlow keeps the first library's kernels for ops of the same name.
    """
    compiler = tmp_path / "g++-without-avx512bf16"
    compiler.write_text(f'#!/bin/sh\nexec {native.compiler()} "$@" -mno-avx512bf16\n')
    compiler.chmod(0o755)
    env = {**cli_env(), "CXX": str(compiler), native.CACHE_ENV: str(tmp_path / "kernels")}
    result = subprocess.run([sys.executable, "-c", FALLBACK_SCRIPT], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "auto fused" in result.stdout
    assert "no bfloat16 Winograd loops" in result.stderr
    explicit = next(line for line in result.stdout.splitlines() if line.startswith("explicit:"))
    assert "does not target AVX512-BF16" in explicit and "--Train-kernels" in explicit
