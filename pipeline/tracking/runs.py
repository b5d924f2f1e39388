"""One MLflow run per evaluated artifact: found by the Evaluate id it is tagged with, logged whole or replaced.

A run is finished when its status is FINISHED, which MLflow sets only as the last step of
``log_new_run`` (after the parameters, metrics, files and model). A run left RUNNING or FAILED by
a process that died or lost the server is deleted and logged again; a finished one is reused, and
files it lacks (a Report made after it was logged) are added to it. The tasks run one Track per
evaluation at a time (a luigid resource, a lock); should two hosts without luigid both log one,
the later run, seeing the older finished one after its own, deletes itself and adopts the older.
"""

import dataclasses
import importlib.metadata
import logging
import os
import re
from datetime import datetime
from pathlib import Path

from pipeline.errors import TrackingError
from pipeline.redact import public_url
from pipeline.tracking.server import client, import_mlflow, said_plainly

log = logging.getLogger(__name__)

EVALUATE_TAG = "lenet.evaluate_id"
MODEL_URI_TAG = "lenet.model_uri"
EPOCH_METRICS = ("train_loss", "validation_error", "learning_rate", "images_per_s")
MODEL_ARTIFACT = "model"
# MLflow's REST API takes at most 1000 metrics and 100 parameters per batch.
METRICS_PER_BATCH = 1000
PARAMS_PER_BATCH = 100


@dataclasses.dataclass
class RunRecord:
    """Everything one MLflow run holds for one evaluated artifact."""

    experiment: str
    evaluate_id: str
    run_name: str
    params: dict
    tags: dict
    history: list[dict]
    metrics: dict
    train_started: str
    model_path: Path
    files: dict[str, Path]  # artifact path inside the run -> local file


def experiment_id(mlflow_client, name: str) -> str:
    """Return the id of the experiment ``name``, created when missing."""
    from mlflow.exceptions import MlflowException

    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return mlflow_client.create_experiment(name)
        except MlflowException:  # created by another run meanwhile
            experiment = mlflow_client.get_experiment_by_name(name)
    if experiment.lifecycle_stage == "deleted":
        raise TrackingError(f"The MLflow experiment {name!r} is deleted: restore it (`mlflow experiments "
                            f"restore --experiment-id {experiment.experiment_id}`) or set [Track] experiment "
                            "to another name, then run again.")
    return experiment.experiment_id


def runs_tagged(mlflow_client, experiment: str, key: str, value: str) -> list:
    """Return the live runs of an experiment whose tag ``key`` is ``value``, oldest first."""
    return list(mlflow_client.search_runs(
        [experiment], filter_string=f"tags.`{key}` = '{value}'", order_by=["attributes.start_time ASC"]))


def is_finished(run) -> bool:
    """Return True for a run logged whole (status FINISHED, with its model)."""
    return run.info.status == "FINISHED" and MODEL_URI_TAG in run.data.tags


def metric_name(name: str) -> str:
    """Return ``name`` with what MLflow does not accept in metric names replaced by '_'."""
    return re.sub(r"[^\w\-. /]", "_", name)


def epoch_metrics(history: list[dict], train_started: str):
    """Return the per-epoch metrics of ``history`` as MLflow Metrics, ``step = epoch``, stamped when each epoch ended."""
    from mlflow.entities import Metric

    elapsed = datetime.fromisoformat(train_started).timestamp() if train_started else 0.0
    metrics = []
    for record in history:
        elapsed += record.get("duration_s", 0.0)
        for key in EPOCH_METRICS:
            if record.get(key) is not None:
                metrics.append(Metric(key, float(record[key]), int(elapsed * 1000), int(record["epoch"])))
    return metrics


def final_metrics(metrics: dict, timestamp_ms: int):
    """Return the test error, test accuracy and per-class accuracy (classes with test examples) as Metrics."""
    from mlflow.entities import Metric

    values = {"test_error": metrics["test_error"], "test_accuracy": metrics["test_accuracy"]}
    for name, accuracy in metrics.get("per_class_accuracy", {}).items():
        if accuracy is not None:
            values[metric_name(f"test_accuracy_class/{name}")] = accuracy
    return [Metric(key, float(value), timestamp_ms, 0) for key, value in values.items()]


def model_requirements() -> list[str]:
    """Return the pinned packages that load the model, as installed here (no inference by loading it)."""
    pins = []
    for names in (("tensorflow", "tensorflow-cpu"), ("keras",), ("numpy",)):
        for name in names:
            try:
                pins.append(f"{name}=={importlib.metadata.version(name)}")
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return pins


def model_signature():
    """Return the model's signature: float32 pixels (N, 28, 28, 1), 0-255 -> logits (N, 10)."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    # The input stays unnamed: a named spec makes the pyfunc wrapper pass a structure Keras warns about.
    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 28, 28, 1))]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 10), "logits")]))


def log_files(mlflow_client, run_id: str, files: dict[str, Path]) -> None:
    """Upload ``files`` ({path inside the run: local file}) to a run's artifacts."""
    for artifact_path, local in sorted(files.items()):
        mlflow_client.log_artifact(run_id, str(local), os.path.dirname(artifact_path) or None)


def log_missing_files(mlflow_client, run_id: str, files: dict[str, Path]) -> list[str]:
    """Upload those of ``files`` that the run's artifacts lack; return their paths inside the run."""
    present = set()
    for folder in sorted({os.path.dirname(path) for path in files}):
        present |= {item.path for item in mlflow_client.list_artifacts(run_id, folder or None)}
    missing = {path: local for path, local in files.items() if path not in present}
    log_files(mlflow_client, run_id, missing)
    return sorted(missing)


def finished_or_cleared(mlflow_client, runs: list, finished, label: str):
    """Return the oldest of ``runs`` that is ``finished`` (or None), after deleting the unfinished ones."""
    for run in runs:
        if not finished(run):
            log.warning("MLflow run %s of %s was left unfinished (status %s); deleting it",
                        run.info.run_id, label, run.info.status)
            mlflow_client.delete_run(run.info.run_id)
    return next((run for run in runs if finished(run)), None)


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def log_new_run(uri: str, mlflow_client, experiment: str, record: RunRecord) -> str:
    """Log ``record`` as a new run of ``experiment``; return its id. FINISHED is set last."""
    import keras
    from mlflow.entities import Param

    mlflow = import_mlflow()
    import mlflow.tensorflow

    run = mlflow_client.create_run(experiment, run_name=record.run_name,
                                   tags={**record.tags, EVALUATE_TAG: record.evaluate_id})
    run_id = run.info.run_id
    log.info("Logging MLflow run %s (experiment %r) for evaluation %s", run_id, record.experiment,
             record.evaluate_id)
    metrics = epoch_metrics(record.history, record.train_started)
    metrics += final_metrics(record.metrics, run.info.start_time)
    params = [Param(key, str(value)) for key, value in sorted(record.params.items())]
    for batch in _batches(params, PARAMS_PER_BATCH):
        mlflow_client.log_batch(run_id, params=batch)
    for batch in _batches(metrics, METRICS_PER_BATCH):
        mlflow_client.log_batch(run_id, metrics=batch)
    log_files(mlflow_client, run_id, record.files)
    # log_model works on the fluent API's active run; leaving the block marks the run FINISHED.
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_id=run_id, log_system_metrics=False):
        model = keras.models.load_model(record.model_path)
        info = mlflow.tensorflow.log_model(model, name=MODEL_ARTIFACT, signature=model_signature(),
                                           pip_requirements=model_requirements())
        mlflow_client.set_tag(run_id, MODEL_URI_TAG, info.model_uri)
    return run_id


def track(uri: str, record: RunRecord) -> dict:
    """Return the finished MLflow run of ``record.evaluate_id``, logging it when there is none.

    Unfinished runs of the same evaluation (a process that died, a server lost midway) are
    deleted, so the experiment ends with exactly one run per evaluated artifact.
    """
    mlflow_client = client(uri)
    with said_plainly(uri, f"logging the run of evaluation {record.evaluate_id}"):
        experiment = experiment_id(mlflow_client, record.experiment)
        runs = runs_tagged(mlflow_client, experiment, EVALUATE_TAG, record.evaluate_id)
        finished = finished_or_cleared(mlflow_client, runs, is_finished, f"evaluation {record.evaluate_id}")
        if finished:
            run_id, reused = finished.info.run_id, True
            added = log_missing_files(mlflow_client, run_id, record.files)
            log.info("Evaluation %s is MLflow run %s already; %s", record.evaluate_id, run_id,
                     f"added {', '.join(added)}" if added else "nothing logged")
        else:
            run_id, reused = log_new_run(uri, mlflow_client, experiment, record), False
            oldest = next(run for run in runs_tagged(mlflow_client, experiment, EVALUATE_TAG, record.evaluate_id)
                          if is_finished(run) or run.info.run_id == run_id)
            if oldest.info.run_id != run_id:
                log.info("Evaluation %s was logged as MLflow run %s meanwhile; deleting this run's duplicate %s",
                         record.evaluate_id, oldest.info.run_id, run_id)
                mlflow_client.delete_run(run_id)
                run_id, reused = oldest.info.run_id, True
        run = mlflow_client.get_run(run_id)
    public = public_url(uri)
    return {"tracking_uri": public, "experiment": record.experiment, "experiment_id": experiment,
            "run_id": run_id, "model_uri": run.data.tags[MODEL_URI_TAG], "reused": reused,
            "run_url": f"{public}/#/experiments/{experiment}/runs/{run_id}" if uri.startswith("http") else ""}


SWEEP_TAG = "lenet.sweep_id"
PARENT_TAG = "mlflow.parentRunId"


def group_sweep(uri: str, experiment: str, sweep_id: str, child_runs: list[str], params: dict,
                best_test_error: float, files: dict[str, Path]) -> str:
    """Return the parent run of a sweep (logged once) after tagging each child run with it.

    MLflow's runs table nests the children under the parent, and ``tags.`lenet.sweep_id` = '<id>'``
    selects one sweep for the compare view. A run shared by two sweeps shows under the later one.
    """
    from mlflow.entities import Metric, Param, RunTag

    mlflow_client = client(uri)
    with said_plainly(uri, f"grouping the runs of sweep {sweep_id}"):
        experiment_key = experiment_id(mlflow_client, experiment)
        parents = runs_tagged(mlflow_client, experiment_key, SWEEP_TAG, sweep_id)
        parents = [run for run in parents if run.data.tags.get("lenet.role") == "sweep"]
        finished = finished_or_cleared(mlflow_client, parents, lambda run: run.info.status == "FINISHED",
                                       f"sweep {sweep_id}")
        if finished:
            parent_id = finished.info.run_id
        else:
            parent = mlflow_client.create_run(experiment_key, run_name=f"sweep-{sweep_id}",
                                              tags={SWEEP_TAG: sweep_id, "lenet.role": "sweep"})
            parent_id = parent.info.run_id
            mlflow_client.log_batch(parent_id, params=[Param(key, str(value)) for key, value in sorted(params.items())],
                                    metrics=[Metric("best_test_error", float(best_test_error),
                                                    parent.info.start_time, 0)])
            log_files(mlflow_client, parent_id, files)
        for run_id in child_runs:
            mlflow_client.log_batch(run_id, tags=[RunTag(SWEEP_TAG, sweep_id), RunTag(PARENT_TAG, parent_id)])
        if not finished:
            mlflow_client.set_terminated(parent_id, "FINISHED")
    return parent_id
