"""Running one callable as a Slurm job: submission with submitit, following it with scontrol, cancelling it.

submitit (Meta's library, which PyTorch's tooling uses too) writes the batch script, pickles the
callable and its result, and requeues a ``Checkpointable`` callable when Slurm signals a time-out or
a preemption. Its own job watcher reads ``sacct``, which needs Slurm's accounting daemon; many
clusters (and the one-node cluster of the tests) run without one, so a job is followed here with
``scontrol show job --oneliner``, whose ``Key=Value`` fields Slurm documents, and finished jobs are
read while Slurm still lists them (``MinJobAge``, 300 s by default) or from submitit's result file.

The job's standard output is relayed line by line (``on_line``) while it runs; lines starting with
``MARKER`` carry a JSON message from the job instead (progress for the scheduler), see ``marker``.
"""

import dataclasses
import json
import logging
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from pipeline.errors import ConfigError, PipelineError

log = logging.getLogger(__name__)

CLIENT_COMMANDS = ("sbatch", "scontrol", "scancel")
MARKER = "@lenet-job "
ACTIVE_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                 "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "SPECIAL_EXIT"}


class SlurmJobError(PipelineError):
    """A Slurm job ended without finishing its work; the message names the job, its state and its log."""


@dataclasses.dataclass(frozen=True)
class SlurmSettings:
    """What a job asks Slurm for, and how it is followed (docs/operations.md lists each)."""

    partition: str = ""
    time_limit_min: int = 60
    cpus_per_task: int = 2
    mem_gb: float = 0.0
    gres: str = ""
    account: str = ""
    qos: str = ""
    sbatch_options: str = ""
    log_dir: str = ""
    poll_s: float = 1.0
    max_requeues: int = 3

    def submitit_parameters(self) -> dict:
        """Return the settings as submitit's SlurmExecutor parameters (empty ones left to Slurm)."""
        parameters = {"time": self.time_limit_min, "cpus_per_task": self.cpus_per_task, "use_srun": False,
                      "additional_parameters": {"requeue": True, **parse_sbatch_options(self.sbatch_options)}}
        for name, value in (("partition", self.partition), ("gres", self.gres), ("account", self.account),
                            ("qos", self.qos)):
            if value:
                parameters[name] = value
        if self.mem_gb:
            parameters["mem"] = f"{int(self.mem_gb * 1024)}M"
        return parameters


def parse_sbatch_options(text: str) -> dict:
    """Return ``--name=value --flag`` sbatch options as submitit's additional parameters."""
    options = {}
    for word in shlex.split(text):
        if not word.startswith("--") or word == "--":
            raise ConfigError(f"[slurm] sbatch_options = {text!r}: {word!r} is not a long sbatch option "
                              f"(write them as --name=value, e.g. --constraint=avx512)")
        name, has_value, value = word[2:].partition("=")
        options[name.replace("-", "_")] = value if has_value else True
    return options


def require_client() -> None:
    """Raise ConfigError unless Slurm's client commands and submitit are installed here."""
    missing = [name for name in CLIENT_COMMANDS if shutil.which(name) is None]
    if missing:
        raise ConfigError(f"Train executor = 'slurm' needs Slurm's client commands on the PATH ({', '.join(missing)} "
                          f"missing): install them (Debian: apt-get install slurm-client) with SLURM_CONF "
                          f"naming the cluster, or use --Train-executor local.")
    try:
        import submitit  # noqa: F401
    except ImportError as error:
        raise ConfigError("Train executor = 'slurm' needs the submitit package: pip install "
                          "'lenet-luigi-pipeline[slurm]' (or the pinned requirements/dev.txt), "
                          "or use --Train-executor local.") from error


def marker(kind: str, **fields) -> str:
    """Return a line the job prints to send ``fields`` to the submitting worker instead of its log."""
    return MARKER + json.dumps({"kind": kind, **fields})


@dataclasses.dataclass
class JobState:
    """What ``scontrol show job`` says about a job; ``state`` is 'GONE' once Slurm no longer lists it."""

    state: str
    reason: str = ""
    node: str = ""
    restarts: int = 0
    exit_code: str = ""

    def describe(self) -> str:
        """Return the state as a person reads it: 'PENDING (Resources)', 'RUNNING on node1'."""
        if self.state == "RUNNING" and self.node:
            return f"RUNNING on {self.node}"
        if self.reason and self.reason != "None":
            return f"{self.state} ({self.reason})"
        return self.state


def job_state(job_id: str) -> JobState:
    """Return the job's current state from ``scontrol show job --oneliner``."""
    result = subprocess.run(["scontrol", "show", "job", "--oneliner", job_id], capture_output=True, text=True,
                            timeout=60)
    if result.returncode != 0:
        if "Invalid job id" in result.stderr:
            return JobState("GONE")
        raise PipelineError(f"scontrol show job {job_id} failed: {result.stderr.strip()}")
    fields = dict(word.partition("=")[::2] for word in result.stdout.split() if "=" in word)
    node = fields.get("BatchHost") or fields.get("NodeList", "")
    return JobState(fields.get("JobState", "UNKNOWN"), fields.get("Reason", ""),
                    "" if node in ("(null)", "None") else node, int(fields.get("Restarts", 0) or 0),
                    fields.get("ExitCode", ""))


def cancel(job_id: str) -> None:
    """Cancel the job (scancel); a job already gone is not an error."""
    subprocess.run(["scancel", job_id], capture_output=True, text=True, timeout=60)


def submit(function, settings: SlurmSettings, folder: Path, job_name: str):
    """Submit ``function()`` as one Slurm job with submitit; return the submitit job."""
    import submitit

    folder.mkdir(parents=True, exist_ok=True)
    executor = submitit.SlurmExecutor(folder=str(folder / "%j"), max_num_timeout=settings.max_requeues)
    executor.update_parameters(job_name=job_name, **settings.submitit_parameters())
    try:
        return executor.submit(function)
    except Exception as error:  # submitit raises its own errors with sbatch's message in them
        raise PipelineError(f"sbatch refused the job: {str(error).strip()[-1500:]}") from error


class _LogTail:
    """The new complete lines of a growing file."""

    def __init__(self, path: Path):
        self.path, self.offset, self.partial = path, 0, b""

    def lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as stream:
                stream.seek(self.offset)
                data = stream.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *complete, self.partial = (self.partial + data).split(b"\n")
        return [line.decode(errors="replace") for line in complete]


def follow(job, settings: SlurmSettings, on_line, on_marker, on_state) -> None:
    """Wait for ``job`` to end, relaying its output; return when it completed, else raise SlurmJobError.

    A SIGTERM or SIGINT to this process, or the end of the process that started it (a Luigi worker
    whose task runs in a forked child), cancels the job. A job that Slurm requeues (preemption,
    ``scontrol requeue``, submitit after a time-out) is followed on.
    """
    import multiprocessing

    job_id = str(job.job_id)
    tails = [_LogTail(Path(job.paths.stdout)), _LogTail(Path(job.paths.stderr))]
    # Set in a task process that a Luigi worker forked (several workers): the worker's end ends
    # this wait too. A worker running tasks itself is not watched (nohup leaves it orphaned on purpose).
    worker = multiprocessing.parent_process()
    ended = False

    def relay() -> None:
        for tail in tails:
            for line in tail.lines():
                if line.startswith(MARKER):
                    on_marker(json.loads(line[len(MARKER):]))
                elif line.strip():
                    on_line(line)

    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    handlers = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                handlers[signum] = signal.signal(signum, stop)
            except ValueError:  # not the main thread: the parent check below still cancels
                pass
        last = None
        while True:
            state = job_state(job_id)
            relay()
            if last is None or state.describe() != last.describe():
                on_state(state)
                last = state
            if state.state == "COMPLETED":
                ended = True
                relay()
                return
            if state.state == "GONE":
                ended = True
                _finished_from_result_file(job, job_id)
                return
            if state.state not in ACTIVE_STATES:
                ended = True
                relay()
                raise SlurmJobError(f"Slurm job {job_id} ended {state.describe()}"
                                    f"{f', exit code {state.exit_code}' if state.exit_code else ''}"
                                    f"{_job_error(job)}: read {job.paths.stdout}")
            if worker is not None and not worker.is_alive():
                raise KeyboardInterrupt("the worker that started the job is gone")
            time.sleep(settings.poll_s)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        if not ended:
            log.warning("Cancelling Slurm job %s", job_id)
            cancel(job_id)


def _job_error(job) -> str:
    """Return ' (<the job's exception>)' when submitit recorded one, else ''."""
    try:
        outcome, detail = _read_result(job)
    except (OSError, ValueError, EOFError):
        return ""
    if outcome != "error":
        return ""
    last = [line for line in str(detail).strip().splitlines() if line.strip()]
    return f" ({last[-1].strip()})" if last else ""


def _read_result(job):
    import pickle

    with open(job.paths.result_pickle, "rb") as stream:
        return pickle.load(stream)


def _finished_from_result_file(job, job_id: str) -> None:
    """For a job Slurm no longer lists: return if submitit recorded success, else raise SlurmJobError."""
    try:
        outcome, detail = _read_result(job)
    except (OSError, ValueError, EOFError):
        raise SlurmJobError(f"Slurm job {job_id} is no longer listed by Slurm and left no result: "
                            f"read {job.paths.stdout}") from None
    if outcome != "success":
        raise SlurmJobError(f"Slurm job {job_id} failed{_job_error(job)}: read {job.paths.stdout}")
