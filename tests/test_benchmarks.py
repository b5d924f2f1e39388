"""The step profile reads TensorFlow's profiler trace (an undocumented format) and ranks real ops."""

import re
import subprocess
import sys

import pytest

from conftest import FASHION_DIR, REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.real_data]


def test_step_profile_ranks_the_training_steps_ops():
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"{FASHION_DIR} is missing: apt-get install dataset-fashion-mnist")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.step_profile", "--precision", "float32",
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
