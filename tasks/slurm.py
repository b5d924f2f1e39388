"""``executor = slurm``: a step's work as one Slurm job, submitted and followed by the Luigi worker.

The worker submits ``StepJob`` (pipeline.slurm: submitit), relays the job's log lines to its own
log (the console and pipeline.log, once each: the job itself writes no pipeline.log), shows the
job's id, state and the training's progress on luigid, cancels the job if it is stopped, and
finally checks that the artifact is finished. The job runs the step exactly as a local run does,
on the same outputs root (a shared directory or s3://), and commits the artifact itself; a requeued
job resumes from the last epoch checkpoint there.
"""

import logging
from pathlib import Path

import luigi

from pipeline import slurm as jobs

# Under the library's logger, which the console and pipeline.log both show (``tasks`` records go
# to pipeline.log only): the job's id, its states and its relayed lines reach both, once each.
log = logging.getLogger("pipeline.slurm.job")

class slurm(luigi.Config):  # noqa: N801 - the class name is the luigi.cfg section users write
    """``[slurm]``: what each job asks for and how it is followed (docs/operations.md)."""

    partition = luigi.Parameter(default="", description="partition (sbatch --partition); empty: the cluster's default")
    time_limit_min = luigi.IntParameter(default=60, description="time limit in minutes (sbatch --time)")
    cpus_per_task = luigi.IntParameter(default=2, description="CPUs of the job (sbatch --cpus-per-task)")
    mem_gb = luigi.FloatParameter(default=0.0, description="memory in GB (sbatch --mem); 0: the cluster's default")
    gres = luigi.Parameter(default="", description="generic resources, e.g. gpu:1 (sbatch --gres)")
    account = luigi.Parameter(default="", description="account to charge (sbatch --account)")
    qos = luigi.Parameter(default="", description="quality of service (sbatch --qos)")
    sbatch_options = luigi.Parameter(default="", description="more sbatch options, e.g. --constraint=avx512")
    log_dir = luigi.Parameter(default="", description="where job logs go (default: slurm/ beside pipeline.log)")
    poll_s = luigi.FloatParameter(default=1.0, description="seconds between two looks at a job's state")
    max_requeues = luigi.IntParameter(default=3, description="times a timed-out job is requeued by submitit")

    def settings(self) -> jobs.SlurmSettings:
        """Return these values as pipeline.slurm's settings."""
        return jobs.SlurmSettings(**{name: getattr(self, name) for name, _ in self.get_params()})


def _shared_configuration(outputs: str) -> dict[str, dict[str, str]]:
    """Return this worker's values of the sections a job needs, command-line overrides included.

    ``[data]`` and ``[paths]`` decide the artifact ids and where they are, ``[s3]`` how to reach a
    bucket; the job sets them again in its Luigi configuration.
    The outputs root goes as the worker resolved it (absolute), whatever directory the job starts in.
    """
    from tasks.config import data, paths

    config = luigi.configuration.get_config()
    values = {"data": data().to_str_params(only_significant=False),
              "paths": {**paths().to_str_params(only_significant=False), "outputs": outputs}}
    if config.has_section("s3"):
        values["s3"] = dict(config.items("s3"))
    return values


class StepJob:
    """What runs in the job: the step's task rebuilt from its parameters, run as a local run does.

    Made a submitit ``Checkpointable`` at submission (see ``submit_step``), so that a job that
    times out or is preempted is requeued with the same call; the training resumes from its last
    epoch checkpoint, as any rerun does.
    """

    def __init__(self, family: str, params: dict[str, str], artifact_id: str, configuration: dict):
        self.family, self.params, self.artifact_id, self.configuration = family, params, artifact_id, configuration

    def __call__(self) -> str:
        import signal
        import sys

        import tasks  # noqa: F401 - the project's tasks and Luigi settings, as `--module tasks` loads them

        # submitit lets a job run on through SIGTERM (it checkpoints on its time-out signal); this
        # one stops at once on scancel or preemption, cleaning up its staging directory, and any
        # later run resumes from the last epoch checkpoint.
        def stop(signum, frame):
            log.warning("Stopped by SIGTERM (scancel, preemption or the node going down); a rerun resumes from "
                        "the last epoch checkpoint")
            sys.exit(128 + signum)

        signal.signal(signal.SIGTERM, stop)

        # The project's records on standard output, which the worker relays; submitit logs its own
        # lines to standard error, relayed as well.
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        for name in ("pipeline", "tasks"):
            logger = logging.getLogger(name)
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False
        config = luigi.configuration.get_config()
        for section, values in self.configuration.items():
            if not config.has_section(section):
                config.add_section(section)
            for name, value in values.items():
                config.set(section, name, value)
        task = luigi.task_register.Register.get_task_cls(self.family).from_str_params(
            {**self.params, "executor": "local"})
        if task.artifact_id != self.artifact_id:
            raise RuntimeError(f"this job computes {self.family} {task.artifact_id}, not {self.artifact_id}: "
                               f"the settings it sees differ from the worker's")

        def send(kind):
            return lambda value: print(jobs.marker(kind, value=value), flush=True)

        task.set_status_message = send("status")
        task.set_progress_percentage = send("progress")
        task.set_tracking_url = send("tracking_url")
        task.make()
        return task.artifact_id


def submit_step(task) -> None:
    """Run ``task``'s work as a Slurm job and wait for it; raise PipelineError if it does not finish."""
    import submitit

    from pipeline.storage import log_dir_for
    from tasks.config import paths

    settings = slurm().settings()

    class CheckpointableStepJob(StepJob, submitit.helpers.Checkpointable):
        pass

    job = CheckpointableStepJob(task.get_task_family(), task.to_str_params(only_significant=False),
                                task.artifact_id, _shared_configuration(task.outputs))
    folder = Path(settings.log_dir) if settings.log_dir else Path(log_dir_for(task.outputs, paths().cache)) / "slurm"
    submitted = jobs.submit(job, settings, folder, f"lenet-{task.step}-{task.artifact_id}")
    job_id = str(submitted.job_id)
    log.info("%s %s runs as Slurm job %s (log: %s)", task.get_task_family(), task.artifact_id, job_id,
             submitted.paths.stdout)
    task.set_status_message(f"Slurm job {job_id}: submitted")

    def on_state(state):
        log.info("Slurm job %s: %s", job_id, state.describe())
        task.set_status_message(f"Slurm job {job_id}: {state.describe()}")

    def on_marker(message):
        if message["kind"] == "status":
            task.set_status_message(f"Slurm job {job_id}: {message['value']}")
        elif message["kind"] == "progress":
            task.set_progress_percentage(message["value"])
        elif message["kind"] == "tracking_url":
            task.set_tracking_url(message["value"])

    jobs.follow(submitted, settings, lambda line: log.info("[job %s] %s", job_id, line), on_marker, on_state)
    status = task.output().status()
    if not status.finished:
        raise jobs.SlurmJobError(f"Slurm job {job_id} completed but {task.output().path} is not finished "
                                  f"({status.problem}): read {submitted.paths.stdout}")
