"""A throw-away MLflow tracking server on a loopback port, from the project's own server environment.

``make mlflow-env`` makes ``.venv-mlflow`` (requirements/mlflow-server.txt) once; the server
keeps its SQLite database and artifacts in a given directory, so ``stop()`` then ``start()``
brings back the same server (the outage tests). Used by the tests and benchmarks/track_cost.py.
"""

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from luigid_server import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVER_VENV = REPO_ROOT / ".venv-mlflow"


def server_environment() -> Path:
    """Return the ``mlflow`` executable of .venv-mlflow, made by ``make mlflow-env`` when missing."""
    subprocess.run(["make", "--no-print-directory", "mlflow-env"], cwd=REPO_ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return SERVER_VENV / "bin" / "mlflow"


class TemporaryMlflow:
    """``mlflow server`` on 127.0.0.1:``port`` with its data in ``directory``; ``uri``, ``stop()``, ``start()``."""

    def __init__(self, directory: Path, timeout: float = 120):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.executable = server_environment()
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        """Start the server (in a process group of its own) and wait until it answers /health."""
        log = open(self.directory / "server.log", "ab")
        self.process = subprocess.Popen(
            [str(self.executable), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.directory / 'mlflow.db'}",
             "--artifacts-destination", str(self.directory / "artifacts")],
            cwd=self.directory, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.timeout
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mlflow server did not answer on {self.uri}; see {self.directory / 'server.log'}")
            time.sleep(0.25)

    def answers(self) -> bool:
        """Return True when the server answers its health check."""
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server and every process it started (its process group), nothing else."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass
        self.process = None

    def client(self):
        """Return an MlflowClient for this server."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
