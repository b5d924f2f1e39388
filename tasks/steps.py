"""The five steps, in the order data flows: download, extract, split, train, evaluate.

    luigi --module tasks Evaluate --local-scheduler

TensorFlow is imported inside ``Train`` and ``Evaluate`` only, when they run: a run with
everything complete never loads it, and Luigi's forked workers inherit no TensorFlow state.
"""

import dataclasses
import shutil
import socket
from pathlib import Path

import luigi

from pipeline.artifacts import write_json
from pipeline.errors import ConfigError
from pipeline.data.split import VALIDATION_SIZE, check_validation_size
from pipeline.training.config import TrainingConfig
from pipeline.data.datasets import get_dataset
from tasks.base import ArtifactTask, say
from tasks.config import data


IMAGE_BYTES = 28 * 28
# model.keras (6.7 MB) and the SavedModel (13.4 MB) of the fixed architecture, plus events and history.
TRAIN_ARTIFACT_BYTES = 21_000_000


def _load_arrays(directory: str, *names: str):
    """Return the named ``.npy`` arrays of an artifact directory, memory-mapped (read-only)."""
    import numpy as np

    return [np.load(Path(directory) / f"{name}.npy", mmap_mode="r") for name in names]


class Download(ArtifactTask):
    """Fetch the four .gz IDX files and verify them (``synthetic`` generates them instead)."""

    step = "download"
    code_version = 2  # 2: meta.json lists checksums; custom data keyed by content

    def validate(self):
        from pipeline.data.download import resolve_sources

        dataset = get_dataset(data().dataset)
        if dataset.name != "synthetic":
            resolve_sources(dataset, data().source)

    def identity_params(self):
        dataset = get_dataset(data().dataset)
        # A pinned data set is identified by its checksums, so where it came from does not matter.
        if dataset.is_pinned or dataset.name == "synthetic":
            return {"dataset": dataset.name}
        from pipeline.data.download import local_file_checksums, resolve_sources

        source = resolve_sources(dataset, data().source)[0]
        if source.startswith(("http://", "https://")):
            # Content behind a URL is unknown until fetched: the URL stands for it (see README).
            return {"dataset": dataset.name, "source": source}
        return {"dataset": dataset.name, "gz_sha256": local_file_checksums(source)}

    def produce(self, staging):
        from pipeline.data import download, synthetic

        dataset = get_dataset(data().dataset)
        if dataset.name == "synthetic":
            synthetic.write_self_test_files(staging)
            files = download.verify_files(dataset, staging)
        else:
            from pipeline.progress import PerFileProgress

            bars = PerFileProgress("Download")

            def report(name, received, total):
                bars(name, received, total)
                if total:
                    self.set_progress_percentage(round(100 * received / total))
                self.set_status_message(f"{name}: {received:,} of {total or '?'} bytes")

            files = download.fetch_dataset(dataset, data().source, staging, report)
            bars.close()
            expected = self.identity.get("gz_sha256")
            if expected and expected != {record["file"]: record["gz_sha256"] for record in files}:
                from pipeline.errors import DataError

                raise DataError(f"The files in {data().source} changed while they were being copied; "
                                "run again once they are in place.")
        return {"files": files}


class ExtractToNpy(ArtifactTask):
    """Validate the IDX files and store them as uint8 ``.npy`` arrays."""

    step = "extract"

    def requires(self):
        return Download()

    def needed_bytes(self):
        train_count = get_dataset(data().dataset).train_count
        # MNIST-format test sets are about a sixth of the training set; each example is 784 + 1 bytes.
        return None if train_count is None else train_count * (IMAGE_BYTES + 1) * 7 // 6

    def produce(self, staging):
        from pipeline.data.extract import extract_to_npy

        return {"counts": extract_to_npy(self.input().fetch(), Path(staging))}


class SplitValidation(ArtifactTask):
    """Hold out the first ``validation_size`` training examples for validation."""

    step = "split"
    validation_size = luigi.IntParameter(default=VALIDATION_SIZE, description="examples held out (first N)")

    def validate(self):
        check_validation_size(self.validation_size, get_dataset(data().dataset).train_count)

    def identity_params(self):
        return {"validation_size": self.validation_size}

    def requires(self):
        return ExtractToNpy()

    def needed_bytes(self):
        recorded = (self.input().read_meta() or {}).get("checksums", {})
        return sum(recorded.get(f"train_{name}.npy", {}).get("bytes", 0) for name in ("images", "labels")) or None

    def produce(self, staging):
        import numpy as np

        from pipeline.data.split import split_validation

        images, labels = _load_arrays(self.input().fetch(), "train_images", "train_labels")
        arrays = split_validation(images, labels, self.validation_size)
        for name, array in arrays.items():
            np.save(Path(staging) / f"{name}.npy", array)
        return {"counts": {"train": len(arrays["train_labels"]),
                           "validation": len(arrays["validation_labels"])}}


class Train(ArtifactTask):
    """Train the model with the original schedule; resumes from its last epoch checkpoint."""

    step = "train"
    code_version = 2  # 2: one learning rate per epoch; checkpoints hold the whole training state
    # Defaults come from TrainingConfig, the one place they are written (docs/parameters.md lists them).
    epochs = luigi.IntParameter(default=TrainingConfig.epochs)
    batch_size = luigi.IntParameter(default=TrainingConfig.batch_size)
    learning_rate = luigi.FloatParameter(default=TrainingConfig.learning_rate)
    decay_rate = luigi.FloatParameter(default=TrainingConfig.decay_rate)
    momentum = luigi.FloatParameter(default=TrainingConfig.momentum)
    weight_decay = luigi.FloatParameter(default=TrainingConfig.weight_decay)
    dropout = luigi.FloatParameter(default=TrainingConfig.dropout)
    seed = luigi.IntParameter(default=TrainingConfig.seed)
    precision = luigi.Parameter(
        default=TrainingConfig.precision, description="auto | float32 | mixed_bfloat16 | mixed_float16")
    log_every = luigi.IntParameter(default=TrainingConfig.log_every, significant=False,
                                   description="steps between log lines")
    kernels = luigi.Parameter(
        default=TrainingConfig.kernels,
        description="auto | fused | stock: compiled ops for the slowest parts of a step")
    tensorboard_url = luigi.Parameter(
        default="", significant=False,
        description="URL of a TensorBoard serving the outputs root; becomes the scheduler's tracking URL")
    executor = luigi.ChoiceParameter(
        default="local", choices=["local", "slurm"], significant=False,
        description="local: train in this worker; slurm: as one Slurm job ([slurm] settings)")

    def training_config(self) -> TrainingConfig:
        """Return the task's parameters as a validated TrainingConfig."""
        return TrainingConfig(
            epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
            decay_rate=self.decay_rate, momentum=self.momentum, weight_decay=self.weight_decay,
            dropout=self.dropout, seed=self.seed, precision=self.precision, log_every=self.log_every,
            kernels=self.kernels,
        )

    def validate(self):
        config = self.training_config()
        if self.executor == "slurm":
            from pipeline import slurm

            slurm.require_client()
            if "auto" in (config.precision, config.kernels):
                # auto would resolve on this host, not on the node the job lands on, and the id
                # (computed here) must say what the job trains with.
                raise ConfigError(
                    "Train executor = 'slurm' needs explicit numerics: auto resolves on the submitting host, "
                    "not on the partition's nodes. Pass --Train-precision float32 --Train-kernels stock (any "
                    "CPU or GPU), or the values `python -m pipeline.training.numerics --auto` prints on a node.")

    def run(self):
        if self.executor != "slurm":
            super().run()
            return
        from pipeline.runlog import attach_run_log
        from tasks.slurm import submit_step

        attach_run_log(self.store.log_dir())
        if self.output().status().finished:
            return
        submit_step(self)

    def identity_params(self):
        from pipeline.training.numerics import resolve_numerics

        params = self.training_config().as_dict()
        del params["log_every"]
        # What `auto` means on this host is part of what the artifact is: hosts whose numerics
        # differ make different artifacts, and `auto` is the same artifact as its resolution.
        params["precision"], params["kernels"] = resolve_numerics(params["precision"], params["kernels"])
        return params

    def requires(self):
        return SplitValidation()

    def needed_bytes(self):
        return TRAIN_ARTIFACT_BYTES

    def checkpoint_dir(self) -> Path:
        """Return where checkpoints of this training live until it finishes (local; the store keeps a copy)."""
        return self.store.work_dir(self.step, self.artifact_id)

    def produce(self, staging):
        from pipeline.tensorflow_runtime import import_tensorflow

        import_tensorflow()
        from pipeline.progress import ConsoleProgress
        from pipeline.training.checkpoints import newest_checkpoint_epoch
        from pipeline.training.events import TENSORBOARD_DIR
        from pipeline.training.loop import train_model

        # The numerics the id was computed with (auto resolved for this host), not auto again.
        config = dataclasses.replace(self.training_config(), precision=self.identity["precision"],
                                     kernels=self.identity["kernels"])
        self.store.pull_work(self.step, self.artifact_id, newest_checkpoint_epoch)

        def save_checkpoint(record):
            self.store.push_work(self.step, self.artifact_id, newest_checkpoint_epoch)
            self._report_epoch(record)

        # While training, the events are in the checkpoint directory; after_commit points here
        # to their final place, since the checkpoint directory is removed.
        self.set_tracking_url(self.tensorboard_url or (self.checkpoint_dir() / TENSORBOARD_DIR).as_uri())
        self._progress = ConsoleProgress("Train")
        try:
            # Handed over unnamed, so the training set's pages can be released once on the device.
            split = self.input().fetch()
            model, history = train_model(
                tuple(_load_arrays(split, "train_images", "train_labels")),
                tuple(_load_arrays(split, "validation_images", "validation_labels")),
                config, self.checkpoint_dir(), save_checkpoint, self._report_step)
        finally:
            self._progress.close()
        model.save(Path(staging) / "model.keras")
        # A TF SavedModel beside it, for TensorFlow Serving (signature 'serve': pixels -> logits).
        model.export(str(Path(staging) / "saved_model"), verbose=False)
        shutil.copytree(self.checkpoint_dir() / TENSORBOARD_DIR, Path(staging) / TENSORBOARD_DIR)
        write_json(Path(staging) / "history.json", history)
        return {"seed": config.seed, "precision_used": history[-1]["precision"],
                "kernels_used": history[-1]["kernels"],
                "class_names": list(get_dataset(data().dataset).class_names),
                "final_validation_error": history[-1]["validation_error"]}

    @property
    def resources(self):
        # One training at a time per host unless the scheduler's [resources] says otherwise
        # (Luigi's default capacity for an unlisted resource is 1). A worker waiting on a Slurm
        # job trains nothing itself: Slurm shares out the nodes.
        return {} if self.executor == "slurm" else {f"tf_training_{socket.gethostname()}": 1}

    def _report_epoch(self, record):
        self._last_epoch = record
        self.set_progress_percentage(round(100 * record["epoch"] / self.epochs))
        self.set_status_message(
            f"epoch {record['epoch']}/{self.epochs} done: loss {record['train_loss']:.3f}, "
            f"validation error {record['validation_error']:.2f}%, {record['images_per_s']:.0f} images/s")

    def _report_step(self, progress):
        self._progress.update(progress["step"] / progress["total_steps"],
                              f"epoch {progress['epoch']:.2f}/{self.epochs}, loss {progress['loss']:.3f}")
        self.set_progress_percentage(round(100 * progress["step"] / progress["total_steps"]))
        validation = getattr(self, "_last_epoch", {}).get("validation_error")
        self.set_status_message(
            f"epoch {progress['epoch']:.2f}/{self.epochs}, step {progress['step']}, "
            f"minibatch loss {progress['loss']:.3f}, validation error "
            f"{'n/a' if validation is None else f'{validation:.2f}%'}, "
            f"{1000 * self.batch_size / progress['ms_per_step']:.0f} images/s")

    def after_commit(self):
        from pipeline.training.events import TENSORBOARD_DIR

        if not self.tensorboard_url:
            location = f"{self.output().path}/{TENSORBOARD_DIR}"
            self.set_tracking_url(location if "://" in location else Path(location).as_uri())
        self.store.drop_work(self.step, self.artifact_id)


class Evaluate(ArtifactTask):
    """Measure the trained model on the test set and write ``metrics.json``.

    ``train_overrides`` replaces some Train parameters for this evaluation only (a Sweep uses
    it); every other Train parameter comes from ``[Train]`` / ``--Train-*`` as usual.
    """

    step = "evaluate"
    code_version = 2  # 2: metrics.json params include validation_size
    train_overrides = luigi.DictParameter(default={}, description="Train parameters to override")

    def validate(self):
        unknown = set(self.train_overrides) - set(Train.get_param_names())
        if unknown:
            from pipeline.errors import ConfigError

            raise ConfigError(f"Evaluate train_overrides names unknown Train parameters {sorted(unknown)}; "
                              f"valid: {', '.join(Train.get_param_names())}.")

    def requires(self):
        return {"model": Train(**self.train_overrides), "data": ExtractToNpy()}

    def produce(self, staging):
        from pipeline.tensorflow_runtime import import_tensorflow

        import_tensorflow()
        import keras
        import numpy as np

        from pipeline.results.evaluation import classification_metrics
        from pipeline.results.inference import predict_labels

        images, labels = _load_arrays(self.input()["data"].fetch(), "test_images", "test_labels")
        model = keras.models.load_model(self.input()["model"].fetch() / "model.keras")
        predictions = predict_labels(model, images)
        metrics = classification_metrics(labels, predictions, get_dataset(data().dataset).class_names)
        train = self.upstream()["model"]
        split = train.upstream()["input"]
        metrics.update(dataset=data().dataset, upstream=self.upstream_ids(),
                       params={**split.identity_params(), **train.identity_params()})
        write_json(Path(staging) / "metrics.json", metrics)
        np.save(Path(staging) / "predictions.npy", predictions.astype(np.uint8))
        self.set_status_message(f"test error {metrics['test_error']:.2f}%")
        return {"test_error": metrics["test_error"]}

    def metrics(self) -> dict:
        """Return this evaluation's ``metrics.json`` (fetched from the store)."""
        from pipeline.artifacts import read_json

        return read_json(self.output().fetch() / "metrics.json")

    def after_commit(self):
        metrics = self.metrics()
        say(f"Test error: {metrics['test_error']:.1f}%  (metrics: {self.output().path}/metrics.json)")
