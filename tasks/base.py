"""The base of every step: an output directory named by the step and a hash of what made it."""

import logging
import sys
from pathlib import Path

import luigi

from pipeline.artifacts import (RunClock, artifact_id, artifact_lock, atomic_directory, discard_unfinished,
                                is_complete, write_meta)
from pipeline.errors import PipelineError
from pipeline.runlog import attach_run_log
from tasks.config import outputs_root

log = logging.getLogger(__name__)


class ArtifactTask(luigi.Task):
    """A step whose output is ``<outputs>/<step>/<artifact id>/``, created atomically.

    Subclasses set ``step``, list what identifies their result in ``identity_params()`` and
    write their files in ``produce(staging_dir)``; the base writes ``meta.json`` and renames the
    staging directory into place only when everything succeeded.

    Runs that share an outputs root (two cron jobs, Evaluate and Report at once, workers on
    several hosts) take turns per artifact: ``run()`` holds the artifact's lock file, and a run
    that waited finds the artifact finished and skips it, so no step is computed twice at once.
    """

    step = "artifact"
    # Bump when a step's code changes what it writes, so old artifacts are not reused.
    code_version = 1

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
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

    def complete(self):
        # A directory without its meta.json was not made by a finished run.
        return is_complete(self.output().path)

    def produce(self, staging) -> dict | None:
        """Write this step's files into ``staging``; return extra facts for ``meta.json``."""
        raise NotImplementedError

    def after_commit(self) -> None:
        """Run once the artifact directory is in place (clean-up, final messages)."""

    def run(self):
        attach_run_log(outputs_root())
        final = Path(self.output().path)
        with artifact_lock(final, on_wait=self._report_wait):
            if self.complete():
                log.info("%s %s was finished by another run meanwhile; nothing to do",
                         self.get_task_family(), final)
                return
            discard_unfinished(final)
            clock = RunClock()
            with atomic_directory(final, finished=is_complete) as staging:
                extra = self.produce(staging)
                write_meta(staging, self.step, self.artifact_id, self.identity,
                           self.upstream_ids(), clock, extra)
            log.info("%s wrote %s", self.get_task_family(), final)
            self.after_commit()

    def _report_wait(self, holder: str) -> None:
        """Say that another run holds this artifact's lock, in the log and on the scheduler."""
        log.info("%s %s is being made by another run (%s); waiting for it",
                 self.get_task_family(), self.output().path, holder)
        self.set_status_message(f"waiting for another run ({holder}) to finish this step")


@ArtifactTask.event_handler(luigi.Event.FAILURE)
def _explain_failure(task, exception):
    """Repeat a predictable failure's message plainly at the end of the task's log."""
    if isinstance(exception, PipelineError):
        print(f"ERROR: {task.get_task_family()} failed: {exception}", file=sys.stderr)
