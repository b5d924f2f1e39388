"""Brief training on real Fashion-MNIST (Debian's dataset-fashion-mnist), fetched over HTTP."""

import json

import pytest

from conftest import FASHION_DIR, artifacts, output_of

pytestmark = [pytest.mark.slow, pytest.mark.real_data]


@pytest.fixture
def fashion_dir():
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"{FASHION_DIR} is missing: apt-get install dataset-fashion-mnist")
    return FASHION_DIR


def test_one_epoch_on_real_fashion_mnist_beats_chance_by_far(fashion_dir, serve, run_cli, tmp_path):
    server = serve(fashion_dir)
    result = run_cli("Evaluate", "--local-scheduler", "--data-dataset", "fashion_mnist",
                     "--data-source", server.url, "--paths-outputs", str(tmp_path),
                     "--Train-epochs", "1")
    assert result.returncode == 0, output_of(result)
    (evaluation,) = artifacts(tmp_path, "evaluate")
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert metrics["num_examples"] == 10_000
    assert metrics["test_error"] < 20.0  # chance is 90%
    assert set(metrics["per_class_accuracy"]) >= {"Trouser", "Ankle boot"}
    (download,) = artifacts(tmp_path, "download")
    files = json.loads((download / "meta.json").read_text())["files"]
    assert {f["source"] for f in files} == {server.url}
