"""The base of every step: an output directory named by the step and a hash of what made it."""

import logging
import sys

import luigi

from pipeline.artifacts import RunClock, artifact_id, atomic_directory, write_meta
from pipeline.errors import PipelineError
from pipeline.runlog import attach_run_log
from tasks.config import outputs_root

log = logging.getLogger(__name__)


class ArtifactTask(luigi.Task):
    """A step whose output is ``<outputs>/<step>/<artifact id>/``, created atomically.

    Subclasses set ``step``, list what identifies their result in ``identity_params()`` and
    write their files in ``produce(staging_dir)``; the base writes ``meta.json`` and renames the
    staging directory into place only when everything succeeded.
    """

    step = "artifact"
    # Bump when a step's code changes what it writes, so old artifacts are not reused.
    code_version = 1

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.validate()
        self.artifact_id = artifact_id(
            self.step, {**self.identity_params(), "code_version": self.code_version},
            self.upstream_ids(),
        )
        # The Luigi task id carries the artifact id, so a scheduler shared by runs with
        # different [data] settings never confuses their tasks.
        self.task_id = luigi.task.task_id_str(
            self.get_task_family(),
            {**self.to_str_params(only_significant=True, only_public=True), "artifact": self.artifact_id},
        )
        self._Task__hash = hash(self.task_id)

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

    def output(self):
        return luigi.LocalTarget(str(outputs_root() / self.step / self.artifact_id))

    def produce(self, staging) -> dict | None:
        """Write this step's files into ``staging``; return extra facts for ``meta.json``."""
        raise NotImplementedError

    def after_commit(self) -> None:
        """Run once the artifact directory is in place (clean-up, final messages)."""

    def run(self):
        attach_run_log(outputs_root())
        clock = RunClock()
        with atomic_directory(self.output().path) as staging:
            extra = self.produce(staging)
            write_meta(staging, self.step, self.artifact_id, self.identity_params(),
                       self.upstream_ids(), clock, extra)
        log.info("%s wrote %s", self.get_task_family(), self.output().path)
        self.after_commit()


@ArtifactTask.event_handler(luigi.Event.FAILURE)
def _explain_failure(task, exception):
    """Repeat a predictable failure's message plainly at the end of the task's log."""
    if isinstance(exception, PipelineError):
        print(f"ERROR: {task.get_task_family()} failed: {exception}", file=sys.stderr)
