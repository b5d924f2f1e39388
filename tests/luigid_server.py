"""A throw-away luigid on a free loopback port, its state and history in a given directory.

Used by the tests and by scripts/screenshot_scheduler.py; for a lasting scheduler use
scripts/start-scheduler.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TemporaryLuigid:
    """Start luigid with task history in ``directory``; stop it with ``stop()`` or ``with``."""

    def __init__(self, directory: Path, timeout: float = 30):
        self.directory = Path(directory)
        (self.directory / "log").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.history = self.directory / "history.db"
        config = self.directory / "luigid.cfg"
        config.write_text(f"[scheduler]\nrecord_task_history = true\nstate_path = {self.directory}/state.pickle\n"
                          f"[task_history]\ndb_connection = sqlite:///{self.history}\n")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("luigid")), "--address", "127.0.0.1", "--port", str(self.port),
             "--logdir", str(self.directory / "log")],
            cwd=self.directory, env={**os.environ, "LUIGI_CONFIG_PATH": str(config)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.api("task_list", status="DONE")
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"luigid did not answer on port {self.port}") from None
                time.sleep(0.1)

    def api(self, method: str, **data) -> dict:
        """Call the scheduler's HTTP API and return its response."""
        query = urllib.parse.urlencode({"data": json.dumps(data)})
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/{method}?{query}", timeout=5) as reply:
            return json.loads(reply.read())["response"]

    def watch_running(self, process: subprocess.Popen, family: str, interval: float = 0.05) -> list[tuple]:
        """Return (progress %, status message) of each look at ``family``'s running tasks until ``process`` ends."""
        seen = []
        while process.poll() is None:
            for task_id, task in self.api("task_list", status="RUNNING").items():
                if task_id.startswith(family) and task.get("status_message"):
                    seen.append((task["progress_percentage"], task["status_message"]))
            time.sleep(interval)
        return seen

    def flags(self) -> list[str]:
        """Return the luigi command-line flags that point a worker at this scheduler."""
        return ["--scheduler-host", "127.0.0.1", "--scheduler-port", str(self.port)]

    def stop(self) -> None:
        """Stop luigid."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
