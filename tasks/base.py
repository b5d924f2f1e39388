"""The base of every step: an artifact named by the step and a hash of what made it, in the artifact store."""

import logging
import sys

import luigi

from pipeline.artifacts import RunClock, artifact_id, write_meta
from pipeline.errors import PipelineError
from pipeline.runlog import attach_run_log
from pipeline.storage import log_dir_for
from tasks.config import artifact_store, outputs_location, paths
from tasks.console_errors import remember_log_dir
from tasks.target import ArtifactTarget

log = logging.getLogger(__name__)


class ArtifactTask(luigi.Task):
    """A step whose output is the artifact ``<outputs>/<step>/<artifact id>``, created whole or not at all.

    Subclasses set ``step``, list what identifies their result in ``identity_params()`` and
    write their files in ``produce(staging_dir)``; the base writes ``meta.json`` and the store
    (pipeline.storage: a directory or an S3 prefix) commits the staging directory only when
    everything succeeded. ``output()`` is an ArtifactTarget; ``complete()`` asks it.

    Runs that share an outputs root (two cron jobs, Evaluate and Report at once, workers on
    several hosts) take turns per artifact: ``run()`` holds the artifact's lock, and a run that
    waited finds the artifact finished and skips it, so no step is computed twice at once.
    """

    step = "artifact"
    # Bump when a step's code changes what it writes, so old artifacts are not reused.
    code_version = 1

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outputs = outputs_location()
        remember_log_dir(log_dir_for(self.outputs, paths().cache))
        self.validate()
        # Computed once: what identifies the result when the task was created is what it makes.
        self.identity = self.identity_params()
        self.artifact_id = artifact_id(
            self.step, {**self.identity, "code_version": self.code_version}, self.upstream_ids(),
        )
        # The Luigi task id carries the artifact id, so a scheduler shared by runs with
        # different [data] settings never confuses their tasks.
        self.task_id = luigi.task.task_id_str(
            self.get_task_family(),
            {**self.to_str_params(only_significant=True, only_public=True), "artifact": self.artifact_id},
        )

    # Luigi's own equality compares parameters only; two tasks are the same step when their ids are.
    def __hash__(self):
        return hash(self.task_id)

    def __eq__(self, other):
        return isinstance(other, ArtifactTask) and self.task_id == other.task_id

    def validate(self) -> None:
        """Raise ConfigError for parameter values that cannot work (before any heavy work)."""

    def identity_params(self) -> dict:
        """Return the settings that decide this step's result."""
        return {}

    def upstream(self) -> dict:
        """Return the required tasks as a name -> task dict."""
        required = self.requires()
        if isinstance(required, dict):
            return required
        if isinstance(required, (list, tuple)):
            return {f"input{index}": task for index, task in enumerate(required)}
        return {"input": required}

    def upstream_ids(self) -> dict:
        """Return the artifact ids of the required tasks."""
        return {name: task.artifact_id for name, task in self.upstream().items()}

    @property
    def store(self):
        """The artifact store of the outputs root this task was created for."""
        return artifact_store(self.outputs)

    def output(self) -> ArtifactTarget:
        return ArtifactTarget(self.store, self.step, self.artifact_id)

    def complete(self):
        # Finished means meta.json names this id and every file it lists has its recorded size.
        try:
            return self.output().exists()
        except PipelineError as error:
            # Raised here, Luigi stops scheduling (exit code scheduling_error); say why plainly, once.
            _print_error_once(str(error))
            raise

    def needed_bytes(self) -> int | None:
        """Return about how many bytes the artifact takes, when known (said if the disk fills)."""
        return None

    def produce(self, staging) -> dict | None:
        """Write this step's files into ``staging``; return extra facts for ``meta.json``."""
        raise NotImplementedError

    def after_commit(self) -> None:
        """Run once the artifact directory is in place (clean-up, final messages)."""

    def run(self):
        attach_run_log(self.store.log_dir())
        self.make()

    def make(self) -> None:
        """Make the artifact under its lock (what ``run`` does once the run log is attached)."""
        target = self.output()
        with self.store.lock(self.step, self.artifact_id, on_wait=self._report_wait,
                             timeout_s=paths().lock_timeout or None):
            status = target.status()
            if status.finished:
                log.info("%s %s was finished by another run meanwhile; nothing to do",
                         self.get_task_family(), target.path)
                return
            if status.problem:
                log.warning("%s %s is not a finished artifact (%s); making it again",
                            self.get_task_family(), target.path, status.problem)
            self.store.discard_unfinished(self.step, self.artifact_id)
            clock = RunClock()
            with self.store.staging(self.step, self.artifact_id, self.needed_bytes()) as staging:
                extra = self.produce(staging)
                write_meta(staging, self.step, self.artifact_id, self.identity,
                           self.upstream_ids(), clock, extra)
            log.info("%s wrote %s", self.get_task_family(), target.path)
            self.after_commit()

    def _report_wait(self, holder: str) -> None:
        """Say that another run holds this artifact's lock, in the log and on the scheduler."""
        log.info("%s %s is being made by another run (%s); waiting for it",
                 self.get_task_family(), self.output().path, holder)
        self.set_status_message(f"waiting for another run ({holder}) to finish this step")


_printed_errors: set[str] = set()


def say(message: str) -> None:
    """Print a task's closing line once and keep it in pipeline.log (the ``tasks`` loggers write INFO to the file only)."""
    log.info(message)
    print(message, flush=True)


def _print_error_once(message: str) -> None:
    """Print ``ERROR: message`` on stderr unless this process printed it already."""
    if message not in _printed_errors:
        _printed_errors.add(message)
        print(f"ERROR: {message}", file=sys.stderr, flush=True)


@ArtifactTask.event_handler(luigi.Event.FAILURE)
def _explain_failure(task, exception):
    """Repeat a predictable failure's message plainly at the end of the task's log."""
    if isinstance(exception, PipelineError):
        print(f"ERROR: {task.get_task_family()} failed: {exception}", file=sys.stderr)
