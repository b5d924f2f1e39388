"""Prediction from image files with the training preprocessing, and its errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO_ROOT, artifacts, cli_env, make_pattern_files, output_of
from pipeline.errors import DataError
from pipeline.results.preprocess import load_image, load_npy_batch, to_model_input
from pipeline.data.synthetic import pattern_arrays


def test_light_background_is_inverted_and_resized(tmp_path):
    dark_on_light = np.full((56, 56), 255, np.uint8)
    dark_on_light[20:30, :] = 0
    Image.fromarray(dark_on_light).convert("RGB").save(tmp_path / "scan.jpg")
    image = load_image(tmp_path / "scan.jpg")
    assert image.shape == (28, 28) and image.dtype == np.uint8
    assert image[0].mean() < 30 and image[12].mean() > 200


def test_mnist_style_image_is_kept_as_is():
    image = np.zeros((28, 28), np.uint8)
    image[5:9] = 230
    np.testing.assert_array_equal(to_model_input(image), image)


def test_corrupt_image_names_the_file(tmp_path):
    broken = tmp_path / "digit.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="digit.png is not a readable image"):
        load_image(broken)


def test_npy_batch_of_wrong_shape_is_refused(tmp_path):
    np.save(tmp_path / "batch.npy", np.zeros((2, 32, 32)))
    with pytest.raises(DataError, match=r"shape \(2, 32, 32\); expected \(N, 28, 28\)"):
        load_npy_batch(tmp_path / "batch.npy")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained briefly on the pattern data, through the real CLI."""
    root = tmp_path_factory.mktemp("trained")
    make_pattern_files(root / "idx")
    result = subprocess.run(
        [sys.executable, "-m", "luigi", "--module", "tasks", "Train", "--local-scheduler", "--data-dataset",
         "custom", "--data-source", str(root / "idx"), "--paths-outputs", str(root / "out"),
         "--SplitValidation-validation-size", "200", "--Train-epochs", "2"],
        cwd=REPO_ROOT, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, output_of(result)
    return root / "out"


def predict_cli(*args):
    return subprocess.run([sys.executable, "-m", "tasks.cli", "predict", *args], cwd=REPO_ROOT, env=cli_env(),
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_predicted_labels_of_test_images_written_as_pngs(trained, tmp_path):
    images, labels = pattern_arrays(6, seed=99)
    paths = []
    for index, (image, label) in enumerate(zip(images, labels)):
        path = tmp_path / f"digit{index}.png"
        picture = Image.fromarray(image)
        if index % 2:  # some as dark ink on white paper at another size
            picture = Image.fromarray(255 - image).resize((84, 84), Image.NEAREST)
        picture.save(path)
        paths.append(str(path))
    result = predict_cli("--model", "latest", "--paths-outputs", str(trained), "--json", *paths)
    assert result.returncode == 0, output_of(result)
    predicted = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["class"] for row in predicted] == labels.tolist()
    assert all(0.0 < row["probability"] <= 1.0 for row in predicted)


@pytest.mark.slow
def test_corrupt_image_fails_with_message_and_exit_code(trained, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"definitely not an image")
    result = predict_cli("--model", "latest", "--paths-outputs", str(trained), str(broken))
    assert result.returncode == 3
    assert f"ERROR: {broken} is not a readable image" in result.stderr


@pytest.mark.slow
def test_savedmodel_is_exported_beside_the_keras_model(trained):
    import tensorflow as tf

    (train_dir,) = artifacts(trained, "train")
    assert (train_dir / "model.keras").is_file()
    served = tf.saved_model.load(str(train_dir / "saved_model"))
    logits = served.serve(tf.zeros((3, 28, 28, 1)))
    assert tuple(logits.shape) == (3, 10)


def test_class_names_come_from_the_train_meta(tmp_path):
    from pipeline.results.predict import class_names_for

    (tmp_path / "meta.json").write_text(json.dumps({"class_names": ["T-shirt/top"] + ["x"] * 9}))
    assert class_names_for(tmp_path / "model.keras")[0] == "T-shirt/top"
    (tmp_path / "meta.json").write_text("{}")
    assert class_names_for(tmp_path / "model.keras") == [str(digit) for digit in range(10)]
