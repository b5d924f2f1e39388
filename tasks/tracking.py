"""MLflow tracking after Evaluate: ``Track`` logs one run per evaluated artifact, ``Promote`` blesses its model.

    export MLFLOW_TRACKING_URI=http://127.0.0.1:5000      # make mlflow
    luigi --module tasks Track --local-scheduler [same flags as for Evaluate]
    luigi --module tasks Promote --local-scheduler [same flags] --Promote-max-test-error 1.0

Optional: the pipeline without them is unchanged, and they need the ``mlflow`` extra.
docs/tracking.md says what is logged and how promotion decides.
"""

import re
import socket
from pathlib import Path

import luigi
from luigi.util import inherits

from pipeline.artifacts import read_json, write_json
from pipeline.data.datasets import get_dataset
from tasks.base import ArtifactTask, say
from tasks.config import data
from tasks.report import Report
from tasks.steps import Evaluate

REPORT_FILES = ("report.html", "learning_curves.png", "confusion_matrix.png", "misclassified.png",
                "per_class_accuracy.png")


def default_name() -> str:
    """Return the default experiment and registered model name: ``lenet-<dataset>``."""
    return f"lenet-{get_dataset(data().dataset).name.replace('_', '-')}"


def lineage(task: ArtifactTask) -> dict[str, str]:
    """Return {step: artifact id} for ``task`` and every step it depends on."""
    ids, pending = {}, [task]
    while pending:
        current = pending.pop()
        ids.setdefault(current.step, current.artifact_id)
        pending.extend(current.upstream().values())
    return ids


@inherits(Evaluate)
class Track(ArtifactTask):
    """Log the evaluated run to MLflow once: parameters, per-epoch metrics, test metrics, files and the model."""

    step = "track"
    experiment = luigi.Parameter(default="", description="MLflow experiment (default: lenet-<dataset>)")
    # Private and not significant: a URI may carry credentials, which must not reach luigid, logs or
    # the task id; the artifact's identity holds the URI without them (identity_params).
    tracking_uri = luigi.Parameter(
        default="", significant=False, visibility=luigi.parameter.ParameterVisibility.PRIVATE,
        description="MLflow tracking server (default: $MLFLOW_TRACKING_URI); put credentials in "
                    "MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN")
    report = luigi.BoolParameter(
        default=False, description="make the Report first and log it (without: logged when finished already)")

    def validate(self):
        from pipeline.tracking.server import require_client

        require_client()  # before anything is trained for it

    def identity_params(self):
        from pipeline.redact import public_url
        from pipeline.tracking.server import tracking_uri

        # Another server or experiment is another place the run must be logged; credentials are not.
        return {"tracking_uri": public_url(tracking_uri(self.tracking_uri)),
                "experiment": self.experiment or default_name(),
                "report": self.report}

    @property
    def resources(self):
        # One Track per evaluation at a time on a shared luigid, with or without the report (two
        # Track ids): both log into the same MLflow run. The lock in produce() covers one host
        # without luigid.
        return {f"mlflow_evaluation_{self.clone(Evaluate).artifact_id}": 1}

    def requires(self):
        evaluation = self.clone(Evaluate)
        required = {"evaluation": evaluation, "model": evaluation.requires()["model"]}
        if self.report:
            required["report"] = self.clone(Report)
        return required

    def run_record(self):
        """Return what the MLflow run holds, read from this run's artifacts."""
        from pipeline.tracking.provenance import code_tags
        from pipeline.tracking.runs import RunRecord

        evaluation = self.requires()["evaluation"]
        metrics = read_json(self.input()["evaluation"].fetch() / "metrics.json")
        train_dir = self.input()["model"].fetch()
        train_meta = read_json(train_dir / "meta.json")
        files = {"metrics.json": self.input()["evaluation"].fetch() / "metrics.json",
                 "history.json": train_dir / "history.json"}
        report = self.clone(Report).output()
        if report.exists():
            report_dir = report.fetch()
            files.update({f"report/{name}": report_dir / name for name in REPORT_FILES})
        params = {"dataset": metrics["dataset"], **metrics["params"],
                  "precision_used": train_meta["precision_used"], "kernels_used": train_meta["kernels_used"]}
        if data().source:
            params["data_source"] = data().source
        tags = {**{f"lenet.{step}_id": identity for step, identity in lineage(evaluation).items()},
                "lenet.outputs": self.outputs, "lenet.host": socket.gethostname(), **code_tags()}
        return RunRecord(
            experiment=self.identity["experiment"], evaluate_id=evaluation.artifact_id,
            run_name=f"{metrics['dataset']}-{evaluation.artifact_id}", params=params, tags=tags,
            history=read_json(train_dir / "history.json"), metrics=metrics,
            train_started=train_meta.get("started", ""), model_path=train_dir / "model.keras", files=files)

    def produce(self, staging):
        from pipeline.tensorflow_runtime import import_tensorflow
        from pipeline.tracking.runs import track
        from pipeline.tracking.server import tracking_uri
        import_tensorflow()
        record = self.run_record()
        self.set_status_message(f"logging to MLflow experiment {record.experiment!r}")
        with self.store.lock("track", f"evaluation-{record.evaluate_id}"):
            tracked = track(tracking_uri(self.tracking_uri), record)
        tracked["test_error"] = record.metrics["test_error"]
        tracked["evaluate_id"] = record.evaluate_id
        write_json(Path(staging) / "tracking.json", tracked)
        return {"run_id": tracked["run_id"], "reused": tracked["reused"]}

    def tracked(self) -> dict:
        """Return this artifact's ``tracking.json``: server, experiment, run id and model URI."""
        return read_json(self.output().fetch() / "tracking.json")

    def after_commit(self):
        tracked = self.tracked()
        said = "is tracked already as" if tracked["reused"] else "tracked as"
        say(f"MLflow: evaluation {tracked['evaluate_id']} {said} run {tracked['run_id']} in experiment "
            f"{tracked['experiment']!r}{': ' + tracked['run_url'] if tracked['run_url'] else ''}")


@inherits(Evaluate)
class Promote(ArtifactTask):
    """Register the tracked model; move the alias ``champion`` to it when its test error earns it.

    Track's own settings (``[Track]``, ``--Track-*``) decide where the run is tracked: Promote
    passes only ``train_overrides`` on, as Report does to Evaluate.
    """

    step = "promote"
    model_name = luigi.Parameter(default="", description="registered model (default: lenet-<dataset>)")
    max_test_error = luigi.OptionalFloatParameter(
        default=None, description="highest test error (%) a champion may have (default: no bar)")

    def identity_params(self):
        return {"model_name": self.model_name or default_name(), "max_test_error": self.max_test_error}

    def requires(self):
        return Track(train_overrides=self.train_overrides)

    @property
    def resources(self):
        # A shared luigid runs one promotion per registered model at a time, on every host: the
        # champion check and the alias move must not interleave (the lock in run() covers
        # runs on one host without luigid).
        return {f"mlflow_registry_{self.identity['model_name']}": 1}

    def produce(self, staging):
        from pipeline.tracking.registry import promote
        from pipeline.tracking.server import connection_uri

        tracked = read_json(self.input().fetch() / "tracking.json")
        self.set_status_message(f"registering {self.identity['model_name']}")
        lock_name = re.sub(r"[^\w.-]", "_", f"registry-{self.identity['model_name']}")
        with self.store.lock("promote", lock_name):
            decision = promote(connection_uri(tracked["tracking_uri"], self.requires().tracking_uri),
                               self.identity["model_name"], tracked,
                               tracked["test_error"], tracked["evaluate_id"], self.max_test_error)
        write_json(Path(staging) / "decision.json", decision)
        return {"promoted": decision["promoted"], "version": decision["version"]}

    def after_commit(self):
        say(read_json(self.output().fetch() / "decision.json")["summary"])
