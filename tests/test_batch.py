"""The cron/systemd entry point and artifact housekeeping, through their real command lines."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, artifacts, cli_env, output_of

pytestmark = pytest.mark.slow


def module_command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def pipeline_command(subcommand: str, *args: str) -> list[str]:
    """Return ``lenet-pipeline SUBCOMMAND ARGS``, the documented command line."""
    return [str(Path(sys.executable).with_name("lenet-pipeline")), subcommand, *args]


def run_pipeline(subcommand: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(pipeline_command(subcommand, *args), cwd=REPO_ROOT, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)


def run_module(module: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(module_command(module, *args), cwd=REPO_ROOT, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)


def summaries(outputs: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((outputs / "runs").glob("*.json"))]


def job(source: Path, outputs: Path, *extra: str) -> list[str]:
    return ["Evaluate", "--local-scheduler", "--data-dataset", "custom", "--data-source", str(source),
            "--paths-outputs", str(outputs), "--SplitValidation-validation-size", "200", *extra]


def test_scheduled_run_summarises_logs_and_reruns_nothing(pattern_dir, tmp_path):
    outputs = tmp_path / "out"
    first = run_pipeline("batch", *job(pattern_dir, outputs, "--Train-epochs", "1"))
    assert first.returncode == 0, output_of(first)
    second = run_pipeline("batch", *job(pattern_dir, outputs, "--Train-epochs", "1"))
    assert second.returncode == 0, output_of(second)
    before, after = summaries(outputs)
    assert len(before["ran"]) == 5 and before["exit_code"] == 0
    assert after["ran"] == [] and any(name.startswith("Evaluate") for name in after["already_complete"])
    (metrics_path,) = after["metrics"]
    assert after["metrics"][metrics_path]["num_examples"] == 200
    log = (outputs / "scheduled-runs.log").read_text()
    assert log.count("Scheduled run started") == 2 and "Luigi Execution Summary" in log


def test_failing_scheduled_run_exits_with_task_failed(pattern_dir, tmp_path):
    broken = pattern_dir / "train-labels-idx1-ubyte.gz"
    broken.write_bytes(b"garbage")
    result = run_pipeline("batch", *job(pattern_dir, tmp_path))
    assert result.returncode == 30, output_of(result)
    (summary,) = summaries(tmp_path)
    assert summary["exit_code"] == 30
    assert "train-labels-idx1-ubyte.gz" in summary["failed"][0]["error"]


def test_overlapping_scheduled_run_is_refused(pattern_dir, tmp_path):
    args = job(pattern_dir, tmp_path, "--Train-epochs", "200")
    running = subprocess.Popen(pipeline_command("batch", *args), cwd=REPO_ROOT, env=cli_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("train/*.incomplete/ckpt-epoch-*")):
            assert running.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        started = time.monotonic()
        refused = run_pipeline("batch", *args, timeout=60)
        assert refused.returncode == 10, output_of(refused)
        assert "already running" in refused.stderr
        assert time.monotonic() - started < 15
    finally:
        running.kill()
        running.wait()


def test_forget_reruns_a_step_and_its_dependents_only(pattern_dir, tmp_path):
    outputs = tmp_path / "out"
    base = job(pattern_dir, outputs, "--Train-epochs", "1")
    other = job(pattern_dir, outputs, "--Train-epochs", "2")
    for args in (base, other):
        assert run_module("luigi", "--module", "tasks", *args).returncode == 0
    keep = {step: set(artifacts(outputs, step)) for step in ("download", "extract", "split", "train", "evaluate")}
    flags = base[2:]  # the same flags, without the task name and --local-scheduler
    forgotten = run_pipeline("forget", "Train", *flags)
    assert forgotten.returncode == 0, output_of(forgotten)
    assert forgotten.stdout.count("removed ") == 2
    assert len(artifacts(outputs, "train")) == 1 and len(artifacts(outputs, "evaluate")) == 1
    again = run_pipeline("batch", *base)
    assert again.returncode == 0, output_of(again)
    ran = summaries(outputs)[-1]["ran"]
    assert sorted(name.split("(")[0] for name in ran) == ["Evaluate", "Train"]
    for step in ("download", "extract", "split"):
        assert set(artifacts(outputs, step)) == keep[step]
    assert set(artifacts(outputs, "train")) == keep["train"]


def test_remove_deletes_only_the_named_artifact(pattern_dir, tmp_path):
    outputs = tmp_path / "out"
    assert run_module("luigi", "--module", "tasks", *job(pattern_dir, outputs, "--Train-epochs", "1")).returncode == 0
    (evaluation,) = artifacts(outputs, "evaluate")
    result = run_pipeline("remove", evaluation.name, "--paths-outputs", str(outputs))
    assert result.returncode == 0, output_of(result)
    assert artifacts(outputs, "evaluate") == [] and len(artifacts(outputs, "train")) == 1
    refused = run_pipeline("remove", "nonexistent", "--paths-outputs", str(outputs))
    assert refused.returncode != 0 and "nonexistent is not one artifact under" in refused.stderr
