"""Train as a Slurm job, through a real one-node cluster: the chain, many jobs, cancel, requeue, a killed worker."""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, cli_env, luigi_command, output_of
from luigid_server import TemporaryLuigid

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

EXPLICIT = ["--Train-executor", "slurm", "--Train-precision", "float32", "--Train-kernels", "stock"]


def slurm_env(cluster) -> dict:
    return {**cli_env(), **cluster.environment()}


def start(cluster, outputs: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(luigi_command("--local-scheduler", "--data-dataset", "synthetic", "--paths-outputs",
                                          str(outputs), *args), cwd=REPO_ROOT, env=slurm_env(cluster),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run(cluster, outputs: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    process = start(cluster, outputs, *args)
    out, _ = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, out, "")


def job_ids(cluster, states: str = "all") -> list[str]:
    """Return the ids of this cluster's jobs in ``states`` (squeue's --states)."""
    listed = cluster.command("squeue", "--noheader", "--format=%i", f"--states={states}")
    return listed.stdout.split()


def wait_for(condition, what: str, timeout: float = 300, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def log_text(outputs: Path) -> str:
    path = outputs / "pipeline.log"
    return path.read_text() if path.exists() else ""


def job_in_log(outputs: Path) -> str | None:
    match = re.search(r"runs as Slurm job (\d+)", log_text(outputs))
    return match.group(1) if match else None


# Enough epochs after the first that the job is still training when the test, which sees the
# first epoch's line up to poll_s (1 s) plus its own 0.5 s poll later, stops it.
EPOCHS = 5


def start_until_first_epoch(cluster, outputs: Path, task: str) -> tuple[subprocess.Popen, str]:
    """Start an EPOCHS-epoch ``task`` with Train as a job; return the worker and the job once epoch 1 is saved.

    The epoch's line is logged after its checkpoint is saved.
    """
    process = start(cluster, outputs, task, *EXPLICIT, "--Train-epochs", str(EPOCHS))
    job = wait_for(lambda: job_in_log(outputs), "the job id in the log")
    wait_for(lambda: f"[job {job}] INFO pipeline.training.loop: Epoch 1/{EPOCHS}" in log_text(outputs),
             "the first epoch's checkpoint")
    return process, job


def history(outputs: Path) -> list[dict]:
    return json.loads(next(outputs.glob("train/*/history.json")).read_text())


def test_the_chain_runs_train_as_a_slurm_job(slurm_cluster, tmp_path):
    outputs = tmp_path / "outputs"
    result = run(slurm_cluster, outputs, "Evaluate", *EXPLICIT, "--Train-epochs", "1")
    assert result.returncode == 0, output_of(result)[-5000:]
    job = job_in_log(outputs)
    assert job, output_of(result)[-3000:]
    text = log_text(outputs)
    assert f"Slurm job {job}: RUNNING on {slurm_cluster.node}" in text
    epoch_lines = [line for line in text.splitlines() if f"[job {job}]" in line and "Epoch 1/1" in line]
    assert len(epoch_lines) == 1, "the job's training line reached pipeline.log other than once"
    assert output_of(result).count("Epoch 1/1") == 1, "the job's training line reached the console other than once"
    assert len(list(outputs.glob("train/*/meta.json"))) == 1 and "Test error: 0.0%" in output_of(result)
    assert (outputs / "slurm" / job / f"{job}_0_log.out").is_file()


def test_a_sweep_queues_every_training_at_once(slurm_cluster, tmp_path):
    outputs = tmp_path / "outputs"
    process = start(slurm_cluster, outputs, "Sweep", "--workers", "4", *EXPLICIT, "--Train-epochs", "2",
                    "--slurm-cpus-per-task", "1")
    queued, running = 0, 0
    while process.poll() is None:
        queued = max(queued, len(job_ids(slurm_cluster, "PENDING,RUNNING,CONFIGURING")))
        running = max(running, len(job_ids(slurm_cluster, "RUNNING")))
        time.sleep(0.3)
    out = process.stdout.read()
    assert process.returncode == 0, out[-5000:]
    assert queued == 4, f"{queued} jobs were in the queue at once, not the sweep's 4"
    assert running <= slurm_cluster.cpus
    assert len(list(outputs.glob("train/*/meta.json"))) == 4


def test_a_cancelled_job_fails_the_task_once_and_the_rerun_resumes(slurm_cluster, tmp_path):
    outputs = tmp_path / "outputs"
    process, job = start_until_first_epoch(slurm_cluster, outputs, "Evaluate")
    assert slurm_cluster.command("scancel", job).returncode == 0
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 30, out[-5000:]
    errors = [line for line in out.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and f"Slurm job {job} ended CANCELLED" in errors[0], out[-5000:]
    assert f"{job}_0_log.out" in errors[0]
    rerun = run(slurm_cluster, outputs, "Evaluate", *EXPLICIT, "--Train-epochs", str(EPOCHS))
    assert rerun.returncode == 0, output_of(rerun)[-5000:]
    assert re.search(rf"Resuming .*epoch [1-{EPOCHS - 1}] of {EPOCHS}", output_of(rerun)), output_of(rerun)[-5000:]


def test_a_requeued_job_resumes_and_trains_as_an_uninterrupted_local_run_bit_for_bit(slurm_cluster, tmp_path):
    outputs = tmp_path / "outputs"
    process, job = start_until_first_epoch(slurm_cluster, outputs, "Train")
    requeued = slurm_cluster.command("scontrol", "requeue", job)
    assert requeued.returncode == 0, requeued.stderr
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, out[-5000:]
    assert [record["epoch"] for record in history(outputs)] == list(range(1, EPOCHS + 1))
    assert "Resuming" in log_text(outputs)
    local = run(slurm_cluster, tmp_path / "local", "Train", *EXPLICIT, "--Train-epochs", str(EPOCHS),
                "--Train-executor", "local")
    assert local.returncode == 0, output_of(local)[-3000:]
    assert [r["train_loss"] for r in history(outputs)] == [r["train_loss"] for r in history(tmp_path / "local")]


def test_luigid_shows_the_job_its_state_and_the_trainings_progress(slurm_cluster, tmp_path):
    with TemporaryLuigid(tmp_path / "luigid") as luigid:
        command = luigi_command("Train", *luigid.flags(), "--data-dataset", "synthetic", "--paths-outputs",
                                str(tmp_path / "outputs"), *EXPLICIT, "--Train-epochs", "3", "--Train-log-every", "2")
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=slurm_env(slurm_cluster), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        seen = luigid.watch_running(process, "Train", interval=0.1)
        out = process.stdout.read()
    assert process.returncode == 0, out[-5000:]
    messages = [message for _, message in seen]
    assert any(re.fullmatch(rf"Slurm job \d+: RUNNING on {slurm_cluster.node}", m) for m in messages), messages
    assert any(re.match(r"Slurm job \d+: epoch .* minibatch loss", m) for m in messages), messages
    assert any(percent and 0 < percent <= 100 for percent, _ in seen)


def test_a_worker_stopped_with_sigterm_cancels_its_job(slurm_cluster, tmp_path):
    outputs = tmp_path / "outputs"
    process = start(slurm_cluster, outputs, "Train", *EXPLICIT, "--Train-epochs", "20")
    job = wait_for(lambda: job_in_log(outputs), "the job id in the log")
    wait_for(lambda: job in job_ids(slurm_cluster, "RUNNING"), "the job to run")
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    wait_for(lambda: job not in job_ids(slurm_cluster, "PENDING,RUNNING,CONFIGURING,COMPLETING"),
             "the job to be cancelled", timeout=15)
    state = slurm_cluster.command("scontrol", "show", "job", "--oneliner", job).stdout
    assert "JobState=CANCELLED" in state, state


@pytest.mark.parametrize("numerics", [["--Train-precision", "float32", "--Train-kernels", "stock"], []],
                         ids=["no-slurm", "auto-numerics"])
def test_slurm_without_its_client_or_with_auto_numerics_fails_at_once_in_one_line(tmp_path, numerics):
    env = {**cli_env(), "PATH": os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                                if not (Path(p) / "sbatch").exists())}
    if not numerics:
        env = cli_env()  # Slurm's client installed: auto is what is refused
    started = time.monotonic()
    result = subprocess.run(luigi_command("Train", "--local-scheduler", "--data-dataset", "synthetic",
                                          "--paths-outputs", str(tmp_path), "--Train-executor", "slurm", *numerics),
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and time.monotonic() - started < 60
    errors = [line for line in output_of(result).splitlines() if line.startswith("ERROR:")]
    expected = "apt-get install slurm-client" if numerics else "needs explicit numerics"
    assert len(errors) == 1 and expected in errors[0], output_of(result)[-3000:]
    assert not list(tmp_path.glob("train/*"))
