"""The real image with a real engine (podman, or docker): build, run, bind mounts, exec, compose, Jupyter.

Without a container engine these tests fail, saying what to install: a missing engine must not
pass for a working image.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import FASHION_DIR, REPO_ROOT, output_of
from luigid_server import free_port

pytestmark = pytest.mark.container

IMAGE = "localhost/lenet-luigi-test:latest"
JUPYTER_IMAGE = "localhost/lenet-luigi-jupyter-test:latest"
SWIFT_IMAGE = "localhost/lenet-swift-test:latest"
MLFLOW_IMAGE = "localhost/lenet-mlflow-test:latest"
TRACKING_IMAGE = "localhost/lenet-luigi-tracking-test:latest"
# The object store's S3 user and bucket (deploy/swift), as containers on its network reach it.
S3_ENV = {"AWS_ACCESS_KEY_ID": "test:tester", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
S3_ROOT = "s3://lenet/outputs"
# Half of 2,919,246,840 bytes, the single-stage image with the full TensorFlow wheel and g++.
SIZE_LIMIT = 2_919_246_840 // 2
SYNTHETIC = ["--local-scheduler", "--data-dataset", "synthetic", "--Train-epochs", "1"]


def engine_command() -> str:
    """Return the container engine to drive: $CONTAINER_ENGINE, else podman, else docker."""
    engine = os.environ.get("CONTAINER_ENGINE") or shutil.which("podman") or shutil.which("docker")
    if not engine:
        pytest.fail("No container engine found: the container tests need podman and podman-compose "
                    "(Debian: apt-get install podman podman-compose) or docker with its compose plugin. "
                    "Deselect them with -m 'not container'.", pytrace=False)
    return engine


def engine_run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the engine with ``args``; return the finished process (output captured)."""
    return subprocess.run([engine_command(), *args], capture_output=True, text=True, timeout=timeout)


def build(target: str | None, tag: str, context: Path = REPO_ROOT, dockerfile: str | None = None) -> str:
    result = engine_run("build", *(["--target", target] if target else []), *(["-f", dockerfile] if dockerfile else []),
                        "-t", tag, str(context), timeout=2400)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return tag


@pytest.fixture(scope="module")
def image() -> str:
    """The runtime image, built from the repository's Dockerfile."""
    return build("runtime", IMAGE)


@pytest.fixture(scope="module")
def swift_image() -> str:
    """The small object store of docker-compose.s3.yml (deploy/swift)."""
    return build(None, SWIFT_IMAGE, REPO_ROOT / "deploy" / "swift")


@pytest.fixture(scope="module")
def mlflow_image() -> str:
    """The MLflow tracking server of docker-compose.yml's mlflow profile (deploy/mlflow)."""
    return build(None, MLFLOW_IMAGE, dockerfile=str(REPO_ROOT / "deploy" / "mlflow" / "Dockerfile"))


@pytest.fixture(scope="module")
def tracking_image(image) -> str:
    """The Dockerfile's tracking stage (the runtime plus MLflow's client), which compose builds."""
    return build("tracking", TRACKING_IMAGE)


@pytest.fixture(scope="module")
def jupyter_image(image) -> str:
    """The Jupyter stage of the same Dockerfile."""
    return build("jupyter", JUPYTER_IMAGE)


@pytest.fixture
def outputs(tmp_path) -> Path:
    """A host directory owned by uid 1000, bind-mounted as the container's outputs."""
    directory = tmp_path / "outputs"
    directory.mkdir()
    os.chown(directory, 1000, 1000)
    return directory


def test_image_is_half_the_size_runs_as_uid_1000_and_has_no_compiler(image):
    inspected = json.loads(engine_run("image", "inspect", image).stdout)[0]
    size = int(engine_run("image", "inspect", "--format", "{{.Size}}", image).stdout)
    assert size <= SIZE_LIMIT, f"the image is {size:,} bytes; at most {SIZE_LIMIT:,}"
    assert inspected["Config"]["User"] == "1000:1000"
    assert inspected["Config"]["Cmd"] == ["luigi", "--module", "tasks", "Evaluate", "--local-scheduler"]
    probe = engine_run("run", "--rm", image, "sh", "-c", "command -v g++ c++ gcc cc || echo 'no compiler'; id -u")
    assert probe.stdout.split() == ["no", "compiler", "1000"], output_of(probe)


def test_default_command_on_synthetic_data_writes_uid_1000_files_to_a_bind_mount_and_reruns_nothing(
        image, outputs):
    command = ["run", "--rm", "-v", f"{outputs}:/app/outputs", image, "luigi", "--module", "tasks", "Evaluate",
               *SYNTHETIC]
    first = engine_run(*command)
    assert first.returncode == 0, output_of(first)
    assert "Test error: 0.0%" in first.stdout
    for noise in ("I0000", "absl::InitializeLog", "luigi-interface:"):
        assert noise not in output_of(first)
    written = [path for path in outputs.rglob("*")]
    assert written and {path.stat().st_uid for path in written} == {1000}
    again = engine_run(*command)
    assert again.returncode == 0 and "Did not run any tasks" in output_of(again), output_of(again)


def test_the_fused_ops_built_in_the_image_load_without_compiling(image, outputs):
    result = engine_run("run", "--rm", "-v", f"{outputs}:/app/outputs", image, "luigi", "--module", "tasks",
                        "Train", *SYNTHETIC, "--Train-precision", "mixed_bfloat16", "--Train-kernels", "fused")
    assert result.returncode == 0, output_of(result)
    assert "Using the fused training ops built before for this machine" in output_of(result)
    assert "Building the fused training ops" not in output_of(result)
    (history,) = outputs.glob("train/*/history.json")
    assert json.loads(history.read_text())[0]["kernels"] == "fused"


def test_a_data_set_from_a_read_only_mount(image, outputs):
    assert FASHION_DIR.is_dir(), "needs Debian's dataset-fashion-mnist (make test installs it)"
    result = engine_run("run", "--rm", "-v", f"{outputs}:/app/outputs", "-v", f"{FASHION_DIR}:/data:ro", image,
                        "luigi", "--module", "tasks", "ExtractToNpy", "--local-scheduler",
                        "--data-dataset", "fashion_mnist", "--data-source", "/data")
    assert result.returncode == 0, output_of(result)
    (extract,) = outputs.glob("extract/*/meta.json")
    assert json.loads(extract.read_text())["counts"] == {"train": 60000, "test": 10000}


def test_exec_into_a_running_container_runs_a_task_against_its_luigid(image, outputs):
    name, port = f"lenet-exec-{uuid.uuid4().hex[:8]}", str(free_port())
    started = engine_run("run", "-d", "--name", name, "-e", f"LUIGID_PORT={port}", "-v", f"{outputs}:/app/outputs",
                         image, "scripts/start-scheduler")
    assert started.returncode == 0, output_of(started)
    ask = ["exec", name, "python", "-c",
           "import json, urllib.parse, urllib.request; reply = urllib.request.urlopen("
           f"'http://127.0.0.1:{port}/api/task_list?' + urllib.parse.urlencode("
           "{'data': json.dumps({'status': 'DONE'})}), timeout=2); "
           "print(' '.join(sorted(task['name'] for task in json.load(reply)['response'].values())))"]
    try:
        deadline = time.monotonic() + 60
        while engine_run(*ask).returncode != 0:
            assert time.monotonic() < deadline, "luigid inside the container did not answer"
            time.sleep(0.5)
        ran = engine_run("exec", name, "luigi", "--module", "tasks", "ExtractToNpy", "--data-dataset", "synthetic",
                         "--scheduler-port", port)
        assert ran.returncode == 0, output_of(ran)
        assert engine_run(*ask).stdout.split() == ["Download", "ExtractToNpy"]
        assert (outputs / "luigid" / "history.db").is_file()
    finally:
        engine_run("rm", "-f", name)


def worker_exit_codes(project: str, count: int, timeout: float = 900) -> list[int]:
    """Wait until the compose project's ``count`` worker containers have exited; return their exit codes."""
    deadline = time.monotonic() + timeout
    while True:
        listed = engine_run("ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
                            "--format", "{{.Names}} {{.Status}}").stdout.splitlines()
        workers = [line for line in listed if "worker" in line]
        if len(workers) == count and all("Exited" in line for line in workers):
            return [int(line.split("Exited (")[1].split(")")[0]) for line in workers]
        assert time.monotonic() < deadline, listed
        time.sleep(2)


def compose_logs(compose: list[str], env: dict, tail: int = 60) -> str:
    """Return the last ``tail`` lines each service of a compose project logged (for a failure's message)."""
    logs = subprocess.run([*compose, "logs", "--tail", str(tail)], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    return output_of(logs)


def compose_command() -> list[str]:
    """Return the compose command of the engine: podman-compose, or docker compose."""
    if Path(engine_command()).name == "podman":
        beside = Path(sys.executable).with_name("podman-compose")  # the project's test extra
        found = str(beside) if beside.is_file() else shutil.which("podman-compose")
        if not found:
            pytest.fail("podman-compose is missing: pip install 'podman-compose>=1.5' (or apt-get install "
                        "podman-compose).", pytrace=False)
        return [found]
    return [engine_command(), "compose"]


def test_compose_sweep_with_two_workers_trains_each_model_once_and_tracks_it_in_the_mlflow_service(
        tracking_image, mlflow_image):
    project = f"lenet{uuid.uuid4().hex[:8]}"
    port = free_port()
    compose = [*compose_command(), "-p", project, "-f", str(REPO_ROOT / "docker-compose.yml"), "--profile", "mlflow"]
    env = {**os.environ, "PIPELINE_TASK": "Sweep", "LENET_IMAGE": TRACKING_IMAGE, "LENET_MLFLOW_IMAGE": MLFLOW_IMAGE,
           "PIPELINE_ARGS": "--data-dataset synthetic --Train-epochs 1 --Sweep-track", "MLFLOW_PORT": str(port)}
    env.pop("MLFLOW_TRACKING_URI", None)
    try:
        up = subprocess.run([*compose, "up", "-d", "--no-build", "--scale", "worker=2"], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, output_of(up)
        codes = worker_exit_codes(project, 2)
        # 10/25: the other worker ran some of its tasks
        assert set(codes) <= {0, 10, 25}, (codes, compose_logs(compose, env))
        check = engine_run("run", "--rm", "-v", f"{project}_outputs:/app/outputs", IMAGE, "python", "-c", """
import glob, json, sqlite3
log = open('/app/outputs/pipeline.log').read()
with sqlite3.connect('/app/outputs/luigid/history.db') as db:
    runs = dict(db.execute("SELECT t.name, COUNT(*) FROM task_events e JOIN tasks t ON e.task_id = t.id "
                           "WHERE e.event_name = 'RUNNING' GROUP BY t.name").fetchall())
(results,) = glob.glob('/app/outputs/sweep/*/results.json')
print(json.dumps({'train_wrote': log.count(' Train wrote '), 'running': runs,
                  'rows': len(json.load(open(results)))}))
""")
        assert check.returncode == 0, output_of(check)
        facts = json.loads(check.stdout)
        assert facts["train_wrote"] == 4 and facts["running"]["Train"] == 4 and facts["rows"] == 4, facts
        assert facts["running"]["Track"] == 4, facts
        # From the host, through the published port: each run once, nested under the sweep's parent run.
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
        experiment = client.get_experiment_by_name("lenet-synthetic")
        logged = client.search_runs([experiment.experiment_id])
        (parent,) = [run for run in logged if run.data.tags.get("lenet.role") == "sweep"]
        children = [run for run in logged if run is not parent]
        assert len(children) == 4 and len({run.data.tags["lenet.evaluate_id"] for run in children}) == 4
        assert all(run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent.info.run_id
                   for run in children)
    finally:
        subprocess.run([*compose, "down", "-v"], cwd=REPO_ROOT, env=env, capture_output=True, timeout=300)


def test_jupyter_stage_executes_the_notebook_and_serves_without_a_network(jupyter_image, outputs):
    executed = engine_run("run", "--rm", "--network", "none", "-v", f"{outputs}:/app/outputs", jupyter_image, "sh", "-c",
                          "luigi --module tasks Report " + " ".join(SYNTHETIC)
                          + " && jupyter nbconvert --to notebook --execute notebooks/explore.ipynb"
                          " --output-dir /tmp --output executed.ipynb && cat /tmp/executed.ipynb")
    assert executed.returncode == 0, output_of(executed)[-5000:]
    notebook = json.loads(executed.stdout[executed.stdout.index('{\n "cells"'):])
    outputs_of = [output for cell in notebook["cells"] if cell["cell_type"] == "code" for output in cell["outputs"]]
    texts = ["".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/markdown", ""))
             + "".join(output.get("data", {}).get("text/plain", "")) for output in outputs_of]
    assert not [output for output in outputs_of if output["output_type"] == "error"], texts
    assert any("**Test error 0.00%**" in text for text in texts), texts
    assert sum("image/png" in output.get("data", {}) for output in outputs_of) >= 5, "figures or predictions missing"
    assert any("of 8 right" in text for text in texts), texts
    name = f"lenet-jupyter-{uuid.uuid4().hex[:8]}"
    started = engine_run("run", "-d", "--name", name, "--network", "none", jupyter_image)
    assert started.returncode == 0, output_of(started)
    try:
        deadline = time.monotonic() + 90
        while True:
            status = engine_run("exec", name, "python", "-c",
                                "import urllib.request; print(urllib.request.urlopen("
                                "'http://127.0.0.1:8888/api', timeout=2).read().decode())")
            if status.returncode == 0:
                break
            assert time.monotonic() < deadline, engine_run("logs", name).stderr[-3000:]
            time.sleep(1)
        assert '"version"' in status.stdout
    finally:
        engine_run("rm", "-f", name)


HISTORY_AND_BUCKET = """
import json, sqlite3
from pipeline.storage.s3 import make_client
with sqlite3.connect('/app/outputs/luigid/history.db') as db:
    runs = dict(db.execute("SELECT t.name, COUNT(*) FROM task_events e JOIN tasks t ON e.task_id = t.id "
                           "WHERE e.event_name = 'RUNNING' GROUP BY t.name").fetchall())
keys = [item['Key'] for item in make_client().list_objects_v2(Bucket='lenet', Prefix='outputs/')['Contents']]
print(json.dumps({'running': runs, **{name: sum(key.startswith(f'outputs/{step}/') and key.endswith('/meta.json')
                                               for key in keys) for name, step in (('trained', 'train'), ('swept', 'sweep'))}}))
"""


def test_compose_on_s3_three_workers_train_each_model_once_and_the_bucket_verifies(image, swift_image):
    project = f"lenet{uuid.uuid4().hex[:8]}"
    compose = [*compose_command(), "-p", project, "-f", str(REPO_ROOT / "docker-compose.yml"),
               "-f", str(REPO_ROOT / "docker-compose.s3.yml")]
    env = {**os.environ, "PIPELINE_TASK": "Sweep", "LENET_IMAGE": IMAGE, "LENET_SWIFT_IMAGE": SWIFT_IMAGE,
           "PIPELINE_ARGS": f"--data-dataset synthetic --Train-epochs 2 --paths-outputs {S3_ROOT}"}
    try:
        up = subprocess.run([*compose, "up", "-d", "--no-build", "--scale", "worker=3"], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, output_of(up)
        codes = worker_exit_codes(project, 3)
        # Which worker exits 0, 10 (another worker ran some of its tasks) or 25 (it left while others
        # still ran them) is timing; what counts is that each task ran once, below.
        assert set(codes) <= {0, 10, 25}, codes
        on_network = ["run", "--rm", "--network", f"{project}_default", "-v", f"{project}_outputs:/app/outputs",
                      *(flag for name, value in {**S3_ENV, "AWS_ENDPOINT_URL": "http://swift:8080"}.items()
                        for flag in ("-e", f"{name}={value}")), IMAGE]
        check = engine_run(*on_network, "python", "-c", HISTORY_AND_BUCKET)
        assert check.returncode == 0, output_of(check)
        facts = json.loads(check.stdout)
        assert facts["running"]["Train"] == 4 and facts["trained"] == 4, facts
        assert facts["running"]["Sweep"] == 1 and facts["swept"] == 1, facts
        verified = engine_run(*on_network, "lenet-pipeline", "verify", "--paths-outputs", S3_ROOT)
        assert verified.returncode == 0 and "every file matches" in verified.stdout, output_of(verified)
    finally:
        subprocess.run([*compose, "down", "-v"], cwd=REPO_ROOT, env=env, capture_output=True, timeout=300)


@pytest.fixture
def object_store(swift_image):
    """A network of this test's own with the object store on it (published on a loopback port)."""
    network, name, port = f"lenet-net-{uuid.uuid4().hex[:8]}", f"lenet-swift-{uuid.uuid4().hex[:8]}", free_port()
    assert engine_run("network", "create", network).returncode == 0
    started = engine_run("run", "-d", "--name", name, "--network", network, "-p", f"127.0.0.1:{port}:8080",
                         swift_image)
    assert started.returncode == 0, output_of(started)
    try:
        from pipeline.storage.s3 import make_client

        client = make_client({"endpoint_url": f"http://127.0.0.1:{port}", "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
                              "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"], "region_name": "us-east-1"})
        deadline = time.monotonic() + 90
        while True:
            try:
                client.head_bucket(Bucket="lenet")
                break
            except Exception:
                assert time.monotonic() < deadline, engine_run("logs", name).stderr[-3000:]
                time.sleep(1)
        yield {"network": network, "endpoint": f"http://{name}:8080", "client": client}
    finally:
        engine_run("rm", "-f", name)
        engine_run("network", "rm", network)


@pytest.mark.parametrize("damaged", [False, True], ids=["whole", "newest-checkpoint-damaged"])
def test_a_worker_container_killed_mid_training_is_resumed_by_another_from_the_bucket(image, object_store, tmp_path,
                                                                                      damaged):
    """Killed after its second checkpoint; with ``damaged``, one file of the newest is deleted from the bucket
    first, and the new host warns and resumes from the checkpoint before it."""
    from conftest import make_pattern_files

    data = make_pattern_files(tmp_path / "idx", train_count=9000, test_count=200)
    data.chmod(0o755)
    client = object_store["client"]

    def worker(name: str, detach: bool) -> subprocess.CompletedProcess:
        environment = {**S3_ENV, "AWS_ENDPOINT_URL": object_store["endpoint"]}
        return engine_run("run", *(["-d"] if detach else ["--rm"]), "--name", name, "--hostname", name,
                          "--network", object_store["network"], "-v", f"{data}:/data:ro",
                          *(flag for key, value in environment.items() for flag in ("-e", f"{key}={value}")),
                          image, "luigi", "--module", "tasks", "Evaluate", "--local-scheduler", "--data-dataset",
                          "custom", "--data-source", "/data", "--paths-outputs", S3_ROOT,
                          "--SplitValidation-validation-size", "200", "--Train-epochs", "4")

    def keys() -> list[str]:
        return [item["Key"] for item in client.list_objects_v2(Bucket="lenet", Prefix="outputs/").get("Contents", [])]

    def manifests() -> list[str]:
        return sorted(key for key in keys() if ".incomplete/manifests/" in key)

    first = f"lenet-worker-a-{uuid.uuid4().hex[:6]}"
    assert worker(first, detach=True).returncode == 0
    try:
        deadline = time.monotonic() + 600
        while len(manifests()) < 2:
            assert time.monotonic() < deadline, engine_run("logs", first).stderr[-3000:]
            time.sleep(0.5)
        assert engine_run("kill", first).returncode == 0
    finally:
        engine_run("rm", "-f", first)
    assert not any(key.startswith("outputs/train/") and key.endswith("/meta.json") for key in keys())
    newest = manifests()[-1]
    done = int(newest.rsplit("/", 1)[1].removesuffix(".json"))
    if damaged:
        files = json.loads(client.get_object(Bucket="lenet", Key=newest)["Body"].read())["files"]
        state = next(entry for name, entry in files.items() if name.endswith(".index"))
        client.delete_object(Bucket="lenet", Key=newest.split("manifests/")[0] + f"data/{state['sha256']}")
    second = worker(f"lenet-worker-b-{uuid.uuid4().hex[:6]}", detach=False)
    assert second.returncode == 0, output_of(second)[-5000:]
    assert "Fetched the work in progress of s3://lenet/outputs/train/" in output_of(second)
    resumed_at = done - 1 if damaged else done
    assert f" (epoch {resumed_at} of 4 done)" in output_of(second), output_of(second)[-5000:]
    assert ("Skipped 1 checkpoint(s) in the bucket that do not check out" in output_of(second)) == damaged
    assert not any(".incomplete/" in key for key in keys())


def test_three_workers_with_local_schedulers_on_one_volume_train_each_model_once(image, tmp_path, outputs):
    names = [f"lenet-local-{index}-{uuid.uuid4().hex[:6]}" for index in range(3)]
    for name in names:
        started = engine_run("run", "-d", "--name", name, "--hostname", name, "-v", f"{outputs}:/app/outputs", image,
                             "luigi", "--module", "tasks", "Sweep", "--local-scheduler", "--data-dataset", "synthetic",
                             "--Train-epochs", "2")
        assert started.returncode == 0, output_of(started)
    try:
        codes = [int(engine_run("wait", name, timeout=900).stdout.strip()) for name in names]
        logs = [output_of(engine_run("logs", name)) for name in names]
    finally:
        for name in names:
            engine_run("rm", "-f", name)
    assert codes == [0, 0, 0], logs
    assert (outputs / "pipeline.log").read_text().count(" Train wrote ") == 4, "a model was trained twice"
    assert len(list(outputs.glob("train/*/meta.json"))) == 4 and len(list(outputs.glob("sweep/*/meta.json"))) == 1
    leftovers = [path for path in outputs.glob("*/.*") if not path.name.endswith(".lock")]
    assert leftovers == [], "staging leftovers stayed"
    # Lock files are kept by design (unlinking one races a waiting locker); gc removes the idle ones.
    collected = engine_run("run", "--rm", "-v", f"{outputs}:/app/outputs", image,
                           "lenet-pipeline", "gc", "--older-than", "0")
    assert collected.returncode == 0, output_of(collected)
    assert [path for path in outputs.glob("*/.*")] == [], "gc left a lock file nobody holds"


DEBIAN_13 = "docker.io/library/python:3.13-slim-trixie"


def test_make_run_and_make_test_fast_on_debian_13_with_its_python_3_13():
    """A fresh Debian 13 with Debian's python3.13: the quick start's commands, as a new user types them."""
    assert engine_run("image", "exists", DEBIAN_13).returncode == 0, (
        f"{DEBIAN_13} is missing: ../shared/container/setup-podman {DEBIAN_13} trixie builds it where no "
        "registry is reachable (.ci/run does)")
    script = ("set -e; python3 --version; apt-get update -q >/dev/null; "
              "apt-get install -y -q --no-install-recommends make python3-venv >/dev/null; mkdir /work; "
              "tar -C /src --exclude=./.venv --exclude=./.venv-mlflow --exclude=./outputs --exclude=./.git -cf - . | tar -C /work -xf -; "
              "cd /work && make run ARGS='--data-dataset synthetic --Train-epochs 1' && make test-fast ARGS='-q -p no:cacheprovider'")
    result = engine_run("run", "--rm", "-v", f"{REPO_ROOT}:/src:ro", DEBIAN_13, "sh", "-c", script, timeout=1800)
    assert result.returncode == 0, output_of(result)[-6000:]
    assert "Python 3.13" in result.stdout and "Test error: 0.0%" in result.stdout
    assert " passed" in result.stdout.splitlines()[-1] and "failed" not in result.stdout.splitlines()[-1]
