"""Scheduled batch runs (cron, systemd timers): one locked run, logged and summarised.

    python -m tasks.batch                      # = luigi --module tasks Evaluate --local-scheduler
    python -m tasks.batch Sweep --workers 2    # any task and Luigi flags

Exit codes are luigi.cfg's [retcode] ones. A run of the same job (same arguments, same
outputs root) while one is in progress is refused at once with ``already_running`` (10).
Each run appends Luigi's log and the pipeline's to ``<outputs>/scheduled-runs.log`` and writes
``<outputs>/runs/<start time>-<pid>.json``: what ran, what was already complete, what failed,
the duration, the exit code and the metrics of the evaluations it touched.
"""

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import luigi
import luigi.retcodes

from pipeline.artifacts import read_json, write_json
from pipeline.runlog import append_log_file
from tasks.base import ArtifactTask

DEFAULT_ARGS = ["Evaluate", "--local-scheduler"]
LOG_NAME = "scheduled-runs.log"
LOGGERS = ("luigi-interface", "luigi", "pipeline", "tasks")


def outputs_from(argv: list[str]) -> Path:
    """Return the outputs root a command line will use (its --paths-outputs, else luigi.cfg)."""
    for index, arg in enumerate(argv):
        if arg == "--paths-outputs" and index + 1 < len(argv):
            return Path(argv[index + 1]).expanduser().resolve()
        if arg.startswith("--paths-outputs="):
            return Path(arg.split("=", 1)[1]).expanduser().resolve()
    return Path(luigi.configuration.get_config().get("paths", "outputs", "outputs")).expanduser().resolve()


@contextlib.contextmanager
def job_lock(outputs: Path, argv: list[str]):
    """Hold an exclusive lock for this job; yield False if another process holds it."""
    job = hashlib.sha256(json.dumps([str(outputs), argv]).encode()).hexdigest()[:12]
    lock_dir = outputs / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"scheduled-run-{job}.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            yield False, handle.read().strip()
            return
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {datetime.now(timezone.utc).isoformat(timespec='seconds')}\n")
        handle.flush()
        yield True, ""


class RunRecorder:
    """Collects which tasks ran, were already complete or failed, through Luigi's events."""

    def __init__(self):
        self.ran, self.complete, self.failed = [], [], []
        self.evaluations = []

    def install(self):
        luigi.Task.event_handler(luigi.Event.SUCCESS)(self._success)
        luigi.Task.event_handler(luigi.Event.DEPENDENCY_PRESENT)(self._present)
        luigi.Task.event_handler(luigi.Event.FAILURE)(self._failure)

    def _success(self, task):
        self.ran.append(str(task))
        self._note_evaluation(task)

    def _present(self, task):
        self.complete.append(str(task))
        self._note_evaluation(task)

    def _failure(self, task, exception):
        self.failed.append({"task": str(task), "error": str(exception)})

    def _note_evaluation(self, task):
        if isinstance(task, ArtifactTask) and task.step == "evaluate":
            self.evaluations.append(Path(task.output().path) / "metrics.json")

    def metrics(self) -> dict:
        """Return the headline metrics of every evaluation this run produced or found."""
        found = {}
        for path in self.evaluations:
            if path.is_file():
                metrics = read_json(path)
                found[str(path)] = {key: metrics[key] for key in ("test_error", "test_accuracy", "num_examples")}
        return found


def run_batch(argv: list[str]) -> int:
    """Run one scheduled job with ``argv`` (Luigi arguments); return its exit code."""
    argv = list(argv) or list(DEFAULT_ARGS)
    outputs = outputs_from(argv)
    outputs.mkdir(parents=True, exist_ok=True)
    with luigi.cmdline_parser.CmdlineParser.global_instance(["Evaluate"]):
        codes = luigi.retcodes.retcode()
    with job_lock(outputs, argv) as (acquired, holder):
        if not acquired:
            print(f"Refusing to start: this job is already running ({holder}); exit code "
                  f"{codes.already_running}.", file=sys.stderr)
            return codes.already_running
        handler = append_log_file(outputs / LOG_NAME, LOGGERS)
        recorder = RunRecorder()
        recorder.install()
        started, clock = datetime.now(timezone.utc), time.monotonic()
        logging.getLogger("tasks").info("Scheduled run started: %s", " ".join(argv))
        try:
            luigi.retcodes.run_with_retcodes(["--module", "tasks", *argv])
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        summary = {
            "argv": argv,
            "started": started.isoformat(timespec="seconds"),
            "ended": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "duration_s": round(time.monotonic() - clock, 3),
            "exit_code": code,
            "ran": recorder.ran,
            "already_complete": recorder.complete,
            "failed": recorder.failed,
            "metrics": recorder.metrics(),
        }
        runs = outputs / "runs"
        runs.mkdir(exist_ok=True)
        path = runs / f"{started.strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}.json"
        write_json(path, summary)
        logging.getLogger("tasks").info("Scheduled run ended with exit code %d; summary %s", code, path)
        handler.close()
        print(f"Run summary: {path} (exit code {code})")
        return code


def main() -> None:
    """Entry point: ``python -m tasks.batch [TASK] [luigi flags]``."""
    sys.exit(run_batch(sys.argv[1:]))


if __name__ == "__main__":
    main()
