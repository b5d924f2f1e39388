"""The step profile reads TensorFlow's profiler trace (an undocumented format) and ranks real ops."""

import re
import subprocess
import sys

import pytest

from conftest import FASHION_DIR, REPO_ROOT




@pytest.mark.slow
@pytest.mark.real_data
def test_step_profile_ranks_the_training_steps_ops():
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"{FASHION_DIR} is missing: apt-get install dataset-fashion-mnist")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.step_profile", "--precision", "float32", "--kernels", "stock",
         "--warmup", "5", "--steps", "5", "--top", "40"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"precision float32, [0-9.]+ ms per 64-image step", result.stdout)
    rows = re.findall(r"^\s+([0-9.]+)  (\S+)$", result.stdout, flags=re.MULTILINE)
    names = [name for _, name in rows]
    assert any("Conv2DBackpropFilter" in name for name in names), result.stdout
    assert any("ResourceApplyKerasMomentum" in name for name in names), result.stdout
    assert not any("::" in name for name in names)
    times = [float(ms) for ms, _ in rows]
    assert times == sorted(times, reverse=True) and times[0] > 0


def test_the_roofline_flops_per_image_are_the_models_own():
    """benchmarks.roofline derives the FLOPs by hand; the model's layer shapes must give the same forward count."""
    import keras

    from benchmarks.roofline import training_flops_per_image
    from pipeline.training.model import make_model

    model = make_model(dropout=0.5)
    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            height, width, filters = layer.output.shape[1:]
            macs += height * width * filters * int(layer.kernel.shape[0] * layer.kernel.shape[1] * layer.kernel.shape[2])
        elif isinstance(layer, keras.layers.Dense):
            macs += int(layer.kernel.shape[0] * layer.kernel.shape[1])
    flops = training_flops_per_image()
    assert flops["forward"] == 2 * macs
    assert round(flops["total"] / 1e6, 1) == 72.4
