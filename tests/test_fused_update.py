"""The compiled fused update: TensorFlow's arithmetic bit for bit, safe writes, clear failures."""

import logging

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from pipeline import native, synthetic  # noqa: E402
from pipeline.config import TrainingConfig  # noqa: E402
from pipeline.errors import ConfigError, PipelineError  # noqa: E402
from pipeline.fused_update import choose_update_kernel  # noqa: E402
from pipeline.training import Trainer, train_model  # noqa: E402

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
    l2_loss = native.fused_momentum_op().fused_momentum_l2_bf16(w.handle, m.handle, shadow.handle, gradient,
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


def test_a_read_still_held_keeps_its_values():
    """Copy on write: a tensor read before the update must not change under its holder."""
    weights, momentum, gradient = random_state(seed=1)
    w, m = tf.Variable(weights), tf.Variable(momentum)
    shadow = tf.Variable(tf.cast(weights, tf.bfloat16))
    held_w, held_shadow = w.value(), shadow.value()
    native.fused_momentum_op().fused_momentum_l2_bf16(w.handle, m.handle, shadow.handle, gradient,
                                                       LR, MOMENTUM, DECAY)
    np.testing.assert_array_equal(held_w.numpy(), weights)
    np.testing.assert_array_equal(tf.cast(held_shadow, tf.float32), tf.cast(tf.cast(weights, tf.bfloat16), tf.float32))
    assert not np.array_equal(w.numpy(), weights)


def test_mismatched_shapes_are_refused_with_the_shapes():
    weights, momentum, gradient = random_state()
    w, m = tf.Variable(weights), tf.Variable(momentum)
    shadow = tf.Variable(tf.zeros((3, 3), tf.bfloat16))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[3,3\]"):
        native.fused_momentum_op().fused_momentum_l2_bf16(w.handle, m.handle, shadow.handle, gradient,
                                                           LR, MOMENTUM, DECAY)


@pytest.fixture(scope="module")
def pattern():
    return synthetic.pattern_arrays(320, seed=1), synthetic.pattern_arrays(64, seed=2)


def test_fused_training_gives_the_same_weights_as_stock(pattern):
    train, _ = pattern

    def weights_after_steps(update_kernel):
        trainer = Trainer(train, TrainingConfig(precision="mixed_bfloat16", update_kernel=update_kernel))
        assert trainer.update_kernel == update_kernel
        order = trainer.epoch_order(0)
        trainer.run_steps(order, 0, 2)
        # An outside assignment between calls (as a checkpoint restore does) reaches the fused copy.
        kernel = trainer.model.get_layer("fc1").kernel
        kernel.assign(kernel.value * 0.5)
        losses = trainer.run_steps(order, 2, 3)
        return [v.numpy() for v in trainer.model.weights], losses

    stock, stock_losses = weights_after_steps("stock")
    fused_weights, fused_losses = weights_after_steps("fused")
    for a, b in zip(stock, fused_weights):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(fused_losses, stock_losses, rtol=1e-5)


def test_history_names_the_update_kernel(pattern, tmp_path):
    train, validation = pattern
    _, history = train_model(train, validation, TrainingConfig(epochs=1, precision="mixed_bfloat16"), tmp_path)
    assert history[0]["update_kernel"] == "fused"
    _, history = train_model(train, validation, TrainingConfig(epochs=1, precision="float32"), tmp_path / "f32")
    assert history[0]["update_kernel"] == "stock"


def test_auto_uses_stock_where_fused_does_not_apply(caplog):
    with caplog.at_level(logging.INFO):
        assert choose_update_kernel("auto", "float32", 1, False) == "stock"
    assert "precision is float32" in caplog.text
    assert choose_update_kernel("auto", "mixed_bfloat16", 2, False) == "stock"
    assert choose_update_kernel("stock", "mixed_bfloat16", 1, False) == "stock"
    assert choose_update_kernel("auto", "mixed_bfloat16", 1, False) == "fused"


def test_fused_where_it_cannot_run_says_why():
    with pytest.raises(ConfigError, match="precision is float32.*--Train-update-kernel"):
        choose_update_kernel("fused", "float32", 1, False)


@pytest.fixture
def no_compiler(monkeypatch, tmp_path):
    """A machine without a C++ compiler and without a built op (the op cache is restored after)."""
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv(native.CACHE_ENV, str(tmp_path / "kernels"))
    native.fused_momentum_op.cache_clear()
    yield
    native.fused_momentum_op.cache_clear()


def test_without_a_compiler_auto_falls_back_and_fused_explains(no_compiler, caplog):
    with caplog.at_level(logging.WARNING):
        assert choose_update_kernel("auto", "mixed_bfloat16", 1, False) == "stock"
    assert "no working C++ compiler" in caplog.text
    with pytest.raises(PipelineError, match="install g\\+\\+.*--Train-update-kernel stock"):
        choose_update_kernel("fused", "mixed_bfloat16", 1, False)


def test_a_failed_build_shows_the_compiler_output_and_leaves_nothing(no_compiler, monkeypatch, tmp_path):
    broken = tmp_path / "broken-compiler"
    broken.write_text("#!/bin/sh\n[ \"$1\" = --version ] && exit 0\necho 'fatal: out of disk' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CXX", str(broken))
    with pytest.raises(PipelineError, match="(?s)exit 1.*fatal: out of disk.*--Train-update-kernel stock"):
        native.fused_momentum_op()
    built = [p for p in (tmp_path / "kernels").rglob("*") if p.is_file()]
    assert built == []


def test_an_unwritable_cache_is_named_with_the_fix(no_compiler, monkeypatch, tmp_path):
    monkeypatch.delenv("CXX")
    blocked = tmp_path / "read-only"
    blocked.write_text("a file where the cache directory should be")
    monkeypatch.setenv(native.CACHE_ENV, str(blocked / "kernels"))
    with pytest.raises(PipelineError, match=f"{blocked}.*Set {native.CACHE_ENV} to a writable directory"):
        native.fused_momentum_op()
