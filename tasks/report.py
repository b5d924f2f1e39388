"""The run report, after Evaluate: PNG figures and one HTML page.

    luigi --module tasks Report --local-scheduler [same flags as for Evaluate]

Its own entry point, so ``Evaluate`` (the product's canonical command) stays free of
matplotlib; ``Report`` runs ``Evaluate`` first when needed.
"""

from pathlib import Path

from luigi.util import inherits

from pipeline.artifacts import read_json
from pipeline.data.datasets import get_dataset
from tasks.base import ArtifactTask
from tasks.config import data
from tasks.steps import Evaluate


@inherits(Evaluate)
class Report(ArtifactTask):
    """Learning curves, confusion matrix, misclassified images, per-class accuracy, report.html."""

    step = "report"

    def requires(self):
        evaluation = self.clone(Evaluate)
        return {"evaluation": evaluation, **evaluation.requires()}

    def produce(self, staging):
        import numpy as np

        from pipeline.results import report

        staging = Path(staging)
        evaluation = self.input()["evaluation"].fetch()
        metrics = read_json(evaluation / "metrics.json")
        history = read_json(self.input()["model"].fetch() / "history.json")
        extracted = self.input()["data"].fetch()
        images = np.load(extracted / "test_images.npy", mmap_mode="r")
        labels = np.load(extracted / "test_labels.npy")
        predictions = np.load(evaluation / "predictions.npy")
        class_names = metrics["class_names"]
        report.plot_learning_curves(history, staging / "learning_curves.png")
        report.plot_confusion_matrix(metrics["confusion_matrix"], class_names, staging / "confusion_matrix.png")
        _, shown = report.plot_misclassified(images, labels, predictions, class_names, staging / "misclassified.png")
        report.plot_per_class_accuracy(metrics["per_class_accuracy"], staging / "per_class_accuracy.png")
        params = {"dataset": get_dataset(data().dataset).name, **metrics["params"],
                  "train_artifact": self.input()["model"].path, "evaluate_artifact": self.input()["evaluation"].path}
        report.write_html(staging / "report.html", f"LeNet run {self.artifact_id}", params, metrics, {
            "Learning curves per epoch": "learning_curves.png",
            "Confusion matrix (rows: true, columns: predicted)": "confusion_matrix.png",
            f"Misclassified test images, first {shown} (true -> predicted)": "misclassified.png",
            "Per-class test accuracy": "per_class_accuracy.png",
        })
        return {"test_error": metrics["test_error"]}

    def after_commit(self):
        print(f"Report: {self.output().path}/report.html", flush=True)
