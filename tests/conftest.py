"""Shared fixtures: generated IDX data, a loopback HTTP server, and a runner for the real CLI."""

import functools
import http.server
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from pipeline.data import synthetic

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "deploy" / "swift"))  # swift_server: the S3 store the tests run on
sys.path.insert(0, str(REPO_ROOT / "tests"))  # mlflow_server, luigid_server: the services the tests start
sys.path.insert(0, str(REPO_ROOT / "deploy" / "slurm"))  # slurm_cluster: the one-node Slurm cluster
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def make_pattern_files(directory: Path, train_count: int = 1200, test_count: int = 200) -> Path:
    """Write a small learnable IDX data set (the four .gz files) into ``directory``."""
    synthetic.write_idx_files(
        directory,
        synthetic.pattern_arrays(train_count, seed=1),
        synthetic.pattern_arrays(test_count, seed=2),
    )
    return directory


@pytest.fixture
def pattern_dir(tmp_path) -> Path:
    """A directory holding a small generated data set in IDX .gz format."""
    return make_pattern_files(tmp_path / "idx")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files; answers 503 to the first ``fail_first`` requests of each path."""

    failures: dict = {}
    fail_first = 0
    requests: list = []

    def do_GET(self):  # noqa: N802 - the name http.server calls
        type(self).requests.append(self.path)
        seen = type(self).failures.get(self.path, 0)
        if seen < type(self).fail_first:
            type(self).failures[self.path] = seen + 1
            self.send_error(503, "try again")
            return
        super().do_GET()

    def log_message(self, *args):
        pass


class BackgroundServer:
    """An HTTP server on a free port of 127.0.0.1, served from a thread between ``__enter__`` and ``__exit__``."""

    def __init__(self, handler):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class LoopbackServer(BackgroundServer):
    """An HTTP server on 127.0.0.1 serving one directory, with counters for the tests."""

    def __init__(self, directory: Path, fail_first: int = 0):
        handler = type("Handler", (_QuietHandler,), {"failures": {}, "fail_first": fail_first,
                                                     "requests": []})
        self.handler = handler
        super().__init__(functools.partial(handler, directory=str(directory)))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def requests(self) -> list:
        return self.handler.requests


@pytest.fixture
def serve():
    """Return a function that starts a loopback server for a directory (stopped after the test)."""
    servers = []

    def start(directory: Path, fail_first: int = 0) -> LoopbackServer:
        server = LoopbackServer(directory, fail_first).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()


def luigi_command(*args: str) -> list[str]:
    """Return the command line a user types, run with this interpreter's environment."""
    return [sys.executable, "-m", "luigi", "--module", "tasks", *args]


def cli_env() -> dict:
    """Return the environment for CLI runs: a user's (TensorFlow's log level unset), deterministic hashing.

    The compiled ops are built once for the whole test run, in this user's kernel cache, also for
    the tests that give each simulated host its own cache directory (as an image does, with
    LENET_KERNEL_CACHE=/app/kernels): what those tests separate is the artifact cache.
    """
    from pipeline.training import native

    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(PYTHONHASHSEED="0")
    env.setdefault(native.CACHE_ENV, str(native.cache_root()))
    return env


@pytest.fixture
def run_cli():
    """Return a function running ``luigi --module tasks ...`` from the repo root; returns the result."""

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(luigi_command(*args), cwd=REPO_ROOT, env=cli_env(),
                              capture_output=True, text=True, timeout=timeout)

    return run


def custom_run(source, outputs: Path, *extra: str) -> list[str]:
    """Return the CLI arguments of a run on the user's own IDX files."""
    return ["Evaluate", "--local-scheduler", "--data-dataset", "custom", "--data-source", str(source),
            "--paths-outputs", str(outputs), *extra]


def artifacts(outputs: Path, step: str) -> list[Path]:
    """Return the finished artifact directories of one step (the store's own test of "finished")."""
    from pipeline.storage.local import LocalStore

    store = LocalStore(outputs)
    return [store.location(step, identity) for identity in store.ids(step) if store.status(step, identity).finished]


def output_of(result) -> str:
    """Return a finished process's stdout and stderr together."""
    return result.stdout + result.stderr


@pytest.fixture(scope="package")
def slurm_cluster():
    """A one-node Slurm cluster (munged, slurmctld, slurmd) on this machine, for the tests that use it.

    Its files are under a fresh directory in /tmp that the munge user can reach (pytest's own
    temporary directories are private to root), removed afterwards.
    """
    import shutil
    import tempfile

    from slurm_cluster import SlurmCluster, missing_commands

    missing = missing_commands()
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install slurmctld slurmd slurm-client munge "
                    f"(make test installs them)")
    root = Path(tempfile.mkdtemp(prefix="lenet-slurm-"))
    root.chmod(0o755)
    try:
        with SlurmCluster(root) as cluster:
            yield cluster
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="package")
def swift(tmp_path_factory):
    """OpenStack Swift with its S3 layer on free loopback ports, for every test under tests/."""
    from swift_server import TemporarySwift

    with TemporarySwift(tmp_path_factory.mktemp("swift")) as server:
        yield server


@pytest.fixture
def s3_root(swift) -> str:
    """An outputs root ``s3://<new bucket>/outputs`` on the Swift of this test run."""
    bucket = f"lenet-{uuid.uuid4().hex[:12]}"
    swift.client().create_bucket(Bucket=bucket)
    return f"s3://{bucket}/outputs"


def s3_env(swift, cache: Path) -> dict:
    """Return a CLI environment whose AWS variables point at ``swift`` and whose cache is ``cache`` (one host)."""
    return {**cli_env(), **swift.environment(), "XDG_CACHE_HOME": str(cache)}


def bucket_keys(swift, root: str) -> dict[str, int]:
    """Return {key below the root: size} of every object under an ``s3://`` root."""
    bucket, _, prefix = root[len("s3://"):].partition("/")
    found, client, token = {}, swift.client(), None
    while True:
        page = client.list_objects_v2(Bucket=bucket, Prefix=prefix, **({"ContinuationToken": token} if token else {}))
        found.update({item["Key"][len(prefix) + 1:]: item["Size"] for item in page.get("Contents", [])})
        if not page.get("IsTruncated"):
            return found
        token = page["NextContinuationToken"]


@pytest.fixture(scope="package")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` (its own venv, SQLite in a temporary directory) for every test under tests/."""
    from mlflow_server import TemporaryMlflow

    with TemporaryMlflow(tmp_path_factory.mktemp("mlflow")) as server:
        yield server
