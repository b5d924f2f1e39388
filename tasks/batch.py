"""Scheduled batch runs (cron, systemd timers): one locked run, logged and summarised.

    python -m tasks.batch                      # = luigi --module tasks Evaluate --local-scheduler
    python -m tasks.batch Sweep --workers 2    # any task and Luigi flags

Exit codes are luigi.cfg's [retcode] ones. A run of the same job (same arguments, same
outputs root) while one is in progress is refused at once with ``already_running`` (10).
Each run appends Luigi's log and the pipeline's to ``<outputs>/scheduled-runs.log`` and writes
``<outputs>/runs/<start time>-<pid>.json``: what ran, what was already complete, what failed,
the duration, the exit code and the metrics of the evaluations it touched.
"""

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
from luigi.cmdline_parser import CmdlineParser

from pipeline.artifacts import read_json
from pipeline.locks import LockHeld, exclusive_lock
from pipeline.redact import redact_argv
from pipeline.runlog import append_log_file
from tasks.base import ArtifactTask
from tasks.config import artifact_store

DEFAULT_ARGS = ["Evaluate", "--local-scheduler"]
LOG_NAME = "scheduled-runs.log"
LOGGERS = ("luigi-interface", "luigi", "pipeline", "tasks")


def store_from(argv: list[str]):
    """Return the artifact store a command line will use, as Luigi resolves ``[paths] outputs`` for it."""
    try:
        with CmdlineParser.global_instance(["--module", "tasks", *argv]):
            return artifact_store()
    except SystemExit:  # an unparsable command line: Luigi reports it when the run starts
        return artifact_store()


def job_lock_path(store, argv: list[str]) -> Path:
    """Return the lock file of this job (same arguments, same outputs root); removed when the job ends."""
    job = hashlib.sha256(json.dumps([store.describe(), argv]).encode()).hexdigest()[:12]
    return store.log_dir() / "locks" / f"scheduled-run-{job}.lock"


class RunRecorder:
    """Collects which tasks ran, were already complete or failed, through Luigi's events.

    With ``--workers N`` Luigi runs tasks in forked processes, and their SUCCESS and FAILURE
    events fire there, so every event is appended as a JSON line to ``events_path``, which the
    parent reads back when the run is over.
    """

    def __init__(self, events_path: Path):
        self.events_path = Path(events_path)

    def install(self):
        luigi.Task.event_handler(luigi.Event.SUCCESS)(self._success)
        luigi.Task.event_handler(luigi.Event.DEPENDENCY_PRESENT)(self._present)
        luigi.Task.event_handler(luigi.Event.FAILURE)(self._failure)
        luigi.Task.event_handler(luigi.Event.PROCESS_FAILURE)(self._failure)
        luigi.Task.event_handler(luigi.Event.TIMEOUT)(self._failure)

    def _append(self, kind: str, task, **facts) -> None:
        record = {"kind": kind, "task": str(task), **facts}
        if isinstance(task, ArtifactTask) and task.step == "evaluate":
            record["evaluation"] = [task.outputs, task.step, task.artifact_id]
        # One write per line on an O_APPEND file: lines from several processes never interleave.
        with open(self.events_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def _success(self, task):
        self._append("ran", task)

    def _present(self, task):
        self._append("complete", task)

    def _failure(self, task, error):
        self._append("failed", task, error=str(error))

    def events(self) -> list[dict]:
        """Return every recorded event, in the order they happened."""
        if not self.events_path.is_file():
            return []
        return [json.loads(line) for line in self.events_path.read_text().splitlines() if line]

    def summary(self) -> dict:
        """Return the tasks that ran, were complete and failed, and the metrics of the evaluations."""
        events = self.events()
        metrics = {}
        for event in events:
            if event.get("evaluation") and event["kind"] != "failed":
                root, step, identity = event["evaluation"]
                store = artifact_store(root)
                if store.status(step, identity).finished:
                    found = read_json(store.fetch(step, identity) / "metrics.json")
                    metrics[f"{store.uri(step, identity)}/metrics.json"] = {
                        key: found[key] for key in ("test_error", "test_accuracy", "num_examples")}
        return {
            "ran": [event["task"] for event in events if event["kind"] == "ran"],
            "already_complete": [event["task"] for event in events if event["kind"] == "complete"],
            "failed": [{"task": event["task"], "error": event["error"]} for event in events
                       if event["kind"] == "failed"],
            "metrics": metrics,
        }


def run_batch(argv: list[str]) -> int:
    """Run one scheduled job with ``argv`` (Luigi arguments); return its exit code."""
    argv = list(argv) or list(DEFAULT_ARGS)
    store = store_from(argv)
    codes = luigi.retcodes.retcode()
    try:
        with exclusive_lock(job_lock_path(store, argv), wait=False):
            return _run_locked(store, argv)
    except LockHeld as busy:
        print(f"Refusing to start: this job is already running ({busy.holder}); exit code "
              f"{codes.already_running}.", file=sys.stderr)
        return codes.already_running


def _run_locked(store, argv: list[str]) -> int:
    """Run the job (its lock held): log, record events, write the summary; return the exit code."""
    handler = append_log_file(store.log_dir() / LOG_NAME, LOGGERS)
    events = store.log_dir() / "runs"
    events.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    name = f"{started.strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}"
    recorder = RunRecorder(events / f".{name}.events.jsonl")
    recorder.install()
    clock = time.monotonic()
    logging.getLogger("tasks").info("Scheduled run started: %s", " ".join(redact_argv(argv)))
    try:
        luigi.retcodes.run_with_retcodes(["--module", "tasks", *argv])
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    summary = {
        "argv": redact_argv(argv),
        "started": started.isoformat(timespec="seconds"),
        "ended": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - clock, 3),
        "exit_code": code,
        **recorder.summary(),
    }
    path = store.put_json(f"runs/{name}.json", summary)
    recorder.events_path.unlink(missing_ok=True)
    logging.getLogger("tasks").info("Scheduled run ended with exit code %d; summary %s", code, path)
    handler.close()
    print(f"Run summary: {path} (exit code {code})")
    return code


def main() -> None:
    """Entry point: ``python -m tasks.batch [TASK] [luigi flags]``."""
    sys.exit(run_batch(sys.argv[1:]))


if __name__ == "__main__":
    main()
