"""The run report: figure files, the HTML page, and Chromium rendering it."""

import json
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

import matplotlib  # noqa: F401 - a required dependency: a broken install must fail here, not skip
from PIL import Image

from conftest import artifacts, output_of
from pipeline.results import report

CLASSES = [str(digit) for digit in range(10)]
HISTORY = [{"epoch": epoch, "train_loss": 3.0 - epoch / 10, "validation_error": 10.0 / epoch,
            "learning_rate": 0.01 * 0.95 ** (epoch - 1)} for epoch in (1, 2, 3)]


def pixel_size(name: str) -> tuple[int, int]:
    width, height = report.FIGURE_SIZES[name]
    return width * report.DPI, height * report.DPI


def test_each_figure_is_a_png_of_its_declared_size(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (50, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 50)
    predictions = np.where(np.arange(50) % 5 == 0, (labels + 1) % 10, labels)
    matrix = np.zeros((10, 10), int)
    np.add.at(matrix, (labels, predictions), 1)
    report.plot_learning_curves(HISTORY, tmp_path / "learning_curves.png")
    report.plot_confusion_matrix(matrix.tolist(), CLASSES, tmp_path / "confusion_matrix.png")
    _, shown = report.plot_misclassified(images, labels, predictions, CLASSES, tmp_path / "misclassified.png")
    report.plot_per_class_accuracy({name: 0.9 for name in CLASSES}, tmp_path / "per_class_accuracy.png")
    assert shown == 10
    for name in report.FIGURE_SIZES:
        with Image.open(tmp_path / name) as image:
            image.load()
            assert image.format == "PNG" and image.size == pixel_size(name)


def test_html_embeds_and_links_every_figure(tmp_path):
    report.plot_learning_curves(HISTORY, tmp_path / "learning_curves.png")
    metrics = {"test_error": 1.5, "test_accuracy": 0.985, "num_examples": 200}
    page = report.write_html(tmp_path / "report.html", "Run x", {"epochs": 3}, metrics,
                             {"Curves": "learning_curves.png"}).read_text()
    assert 'data-file="learning_curves.png"' in page and 'href="learning_curves.png"' in page
    assert "data:image/png;base64," in page and "Test error 1.50%" in page
    assert "<th>epochs</th><td>3</td>" in page


@pytest.mark.slow
def test_report_task_writes_figures_and_a_page_chromium_renders(pattern_dir, run_cli, tmp_path):
    result = run_cli("Report", "--local-scheduler", "--data-dataset", "custom", "--data-source", str(pattern_dir),
                     "--paths-outputs", str(tmp_path), "--SplitValidation-validation-size", "200",
                     "--Train-epochs", "2")
    assert result.returncode == 0, output_of(result)
    (directory,) = artifacts(tmp_path, "report")
    assert f"Report: {directory / 'report.html'}" in result.stdout
    page = (directory / "report.html").read_text()
    for name in report.FIGURE_SIZES:
        with Image.open(directory / name) as image:
            image.load()
            assert image.size == pixel_size(name)
        assert f'data-file="{name}"' in page
    assert re.search(r"Test error \d+\.\d\d%", page)
    assert json.loads((directory / "meta.json").read_text())["upstream"]["evaluation"]

    chromium = shutil.which("chromium")
    assert chromium, "headless Chromium is needed: apt-get install chromium"
    with tempfile.TemporaryDirectory() as profile:
        screenshot = tmp_path / "render.png"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", "--window-size=1300,2400", f"--screenshot={screenshot}",
                        (directory / "report.html").as_uri()], check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(screenshot).convert("RGB")).reshape(-1, 3).astype(int)
    # matplotlib's default line colour (#1f77b4) appears only if the embedded figures rendered.
    plot_blue = np.all(np.abs(pixels - [31, 119, 180]) < 12, axis=1).sum()
    assert plot_blue > 500, "the figures did not render in Chromium"
