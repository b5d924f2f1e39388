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


def build(target: str, tag: str) -> str:
    result = engine_run("build", "--target", target, "-t", tag, str(REPO_ROOT), timeout=2400)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return tag


@pytest.fixture(scope="module")
def image() -> str:
    """The runtime image, built from the repository's Dockerfile."""
    return build("runtime", IMAGE)


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


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_a_data_set_from_a_read_only_mount(image, outputs):
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


def test_compose_sweep_with_two_workers_trains_each_model_once(image):
    project = f"lenet{uuid.uuid4().hex[:8]}"
    compose = [*compose_command(), "-p", project, "-f", str(REPO_ROOT / "docker-compose.yml")]
    env = {**os.environ, "PIPELINE_TASK": "Sweep", "PIPELINE_ARGS": "--data-dataset synthetic --Train-epochs 1"}
    subprocess.run(["podman" if "podman" in compose[0] else "docker", "tag", IMAGE, "lenet-luigi"], check=True)
    try:
        up = subprocess.run([*compose, "up", "-d", "--no-build", "--scale", "worker=2"], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, output_of(up)
        deadline = time.monotonic() + 900
        while True:
            listed = engine_run("ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
                                "--format", "{{.Names}} {{.Status}}").stdout.splitlines()
            workers = [line for line in listed if "worker" in line]
            if len(workers) == 2 and all("Exited" in line for line in workers):
                break
            assert time.monotonic() < deadline, listed
            time.sleep(2)
        codes = [int(line.split("Exited (")[1].split(")")[0]) for line in workers]
        assert set(codes) <= {0, 10, 25}, workers
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
    finally:
        subprocess.run([*compose, "down", "-v"], cwd=REPO_ROOT, capture_output=True, timeout=300)


def test_jupyter_stage_executes_the_notebook_and_serves_without_a_network(jupyter_image, outputs):
    executed = engine_run("run", "--rm", "--network", "none", "-v", f"{outputs}:/app/outputs", jupyter_image, "sh", "-c",
                          "luigi --module tasks Report " + " ".join(SYNTHETIC)
                          + " && jupyter nbconvert --to notebook --execute notebooks/explore.ipynb"
                          " --output-dir /tmp --output executed.ipynb && grep -c 'Test error' /tmp/executed.ipynb")
    assert executed.returncode == 0, output_of(executed)[-5000:]
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
