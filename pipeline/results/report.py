"""The run report: learning curves, confusion matrix, misclassified images, per-class accuracy.

Plain matplotlib (Agg backend, no display) writing PNG files of fixed pixel sizes, and one
HTML page that embeds them, so the page works on its own when copied or mailed.
"""

import base64
import html
import json
from pathlib import Path

import numpy as np

DPI = 100
FIGURE_SIZES = {  # inches at DPI 100: the PNGs' pixel sizes are 100x these
    "learning_curves.png": (12, 4),
    "confusion_matrix.png": (8, 7),
    "misclassified.png": (9, 9),
    "per_class_accuracy.png": (8, 4),
}


def _pyplot():
    """Return matplotlib's pyplot on the Agg backend (works without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> Path:
    figure.savefig(path, dpi=DPI)
    _pyplot().close(figure)
    return path


def plot_learning_curves(history: list[dict], path: Path) -> Path:
    """Plot training loss, validation error and learning rate per epoch."""
    plt = _pyplot()
    epochs = [record["epoch"] for record in history]
    figure, axes = plt.subplots(1, 3, figsize=FIGURE_SIZES["learning_curves.png"], layout="constrained")
    for axis, key, title in zip(axes, ("train_loss", "validation_error", "learning_rate"),
                                ("training loss (incl. L2)", "validation error %", "learning rate")):
        axis.plot(epochs, [record[key] for record in history], marker="o")
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    return _save(figure, path)


def plot_confusion_matrix(matrix: list[list[int]], class_names: list[str], path: Path) -> Path:
    """Plot the confusion matrix (rows: true class, columns: predicted) as a heatmap with counts."""
    plt = _pyplot()
    counts = np.asarray(matrix)
    figure, axis = plt.subplots(figsize=FIGURE_SIZES["confusion_matrix.png"], layout="constrained")
    image = axis.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=axis)
    ticks = range(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    threshold = counts.max() / 2 if counts.size else 0
    for (row, column), count in np.ndenumerate(counts):
        axis.text(column, row, str(count), ha="center", va="center", fontsize=7,
                  color="white" if count > threshold else "black")
    return _save(figure, path)


def plot_misclassified(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                       class_names: list[str], path: Path, limit: int = 36) -> tuple[Path, int]:
    """Plot up to ``limit`` misclassified test images titled 'true -> predicted'; return (path, count)."""
    plt = _pyplot()
    wrong = np.flatnonzero(labels != predictions)[:limit]
    side = 6
    figure, axes = plt.subplots(side, side, figsize=FIGURE_SIZES["misclassified.png"], layout="constrained")
    for axis in axes.flat:
        axis.axis("off")
    for axis, index in zip(axes.flat, wrong):
        axis.imshow(images[index], cmap="gray_r")
        axis.set_title(f"{class_names[labels[index]]} -> {class_names[predictions[index]]}", fontsize=8)
    if len(wrong) == 0:
        axes.flat[0].set_title("no misclassified images", fontsize=10)
    return _save(figure, path), int(len(wrong))


def plot_per_class_accuracy(per_class: dict, path: Path) -> Path:
    """Plot each class's test accuracy as a bar."""
    plt = _pyplot()
    names = list(per_class)
    values = [per_class[name] if per_class[name] is not None else 0.0 for name in names]
    figure, axis = plt.subplots(figsize=FIGURE_SIZES["per_class_accuracy.png"], layout="constrained")
    axis.bar(range(len(names)), values)
    axis.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axis.set_ylim(0, 1)
    axis.set_ylabel("accuracy")
    axis.grid(axis="y", alpha=0.3)
    return _save(figure, path)


def write_html(path: Path, title: str, params: dict, metrics: dict, figures: dict[str, str]) -> Path:
    """Write one HTML page showing the run's parameters, metrics and the figures (embedded).

    ``figures`` maps a caption to a PNG file in the same directory; each is embedded as a data
    URI and linked by its file name.
    """
    directory = Path(path).parent
    rows = "".join(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(json.dumps(value))}</td></tr>"
                   for key, value in sorted(params.items()))
    headline = (f"Test error {metrics['test_error']:.2f}% (accuracy {metrics['test_accuracy']:.4f}) "
                f"on {metrics['num_examples']} test images")
    sections = []
    for caption, name in figures.items():
        encoded = base64.b64encode((directory / name).read_bytes()).decode()
        sections.append(f'<figure><a href="{name}"><img src="data:image/png;base64,{encoded}" '
                        f'alt="{html.escape(caption)}" data-file="{name}"></a>'
                        f"<figcaption>{html.escape(caption)} (<a href=\"{name}\">{name}</a>)</figcaption></figure>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }}
figure {{ margin: 0 0 2em 0; }} img {{ max-width: 100%; border: 1px solid #eee; }}
</style></head>
<body><h1>{html.escape(title)}</h1>
<p class="headline">{html.escape(headline)}</p>
<h2>Parameters</h2><table>{rows}</table>
<h2>Figures</h2>
{"".join(sections)}
</body></html>
"""
    Path(path).write_text(page)
    return Path(path)
