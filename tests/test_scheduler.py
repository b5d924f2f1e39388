"""Against a real luigid: live progress, DONE tasks, task history, sweeps, two workers at once."""

import json
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO_ROOT, cli_env, luigi_command, output_of
from luigid_server import TemporaryLuigid, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def luigid(tmp_path):
    with TemporaryLuigid(tmp_path / "luigid") as server:
        yield server


def data_flags(source: Path, outputs: Path, *extra: str) -> list[str]:
    return ["--data-dataset", "custom", "--data-source", str(source), "--paths-outputs", str(outputs),
            "--SplitValidation-validation-size", "200", *extra]


def test_pipeline_on_luigid_reports_progress_and_history(luigid, pattern_dir, tmp_path):
    command = luigi_command("Evaluate", *luigid.flags(),
                            *data_flags(pattern_dir, tmp_path / "out", "--Train-epochs", "8",
                                        "--Train-log-every", "3"))
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=cli_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    seen = luigid.watch_running(process, "Train")
    output = process.stdout.read()
    assert process.returncode == 0, output
    assert seen, "no live progress was seen while Train ran"
    assert any("minibatch loss" in message and "images/s" in message for _, message in seen)
    assert any("validation error" in message and "%" in message for _, message in seen[1:])
    percentages = [percent for percent, _ in seen if percent is not None]
    assert percentages and 0 < max(percentages) <= 100

    done = luigid.api("task_list", status="DONE")
    families = sorted(task["name"] for task in done.values())
    assert families == ["Download", "Evaluate", "ExtractToNpy", "SplitValidation", "Train"]
    train = next(task for task in done.values() if task["name"] == "Train")
    # The link points at the finished run's events, not the checkpoint directory removed at commit.
    events = Path(urllib.parse.urlparse(train["tracking_url"]).path)
    assert events.is_dir() and events.name == "tensorboard" and list(events.glob("events.out.tfevents.*"))
    assert events.parent.parent == tmp_path / "out" / "train" and ".incomplete" not in str(events)
    evaluate = next(task for task in done.values() if task["name"] == "Evaluate")
    assert evaluate["status_message"].startswith("test error ")

    with sqlite3.connect(luigid.history) as history:
        names = {row[0] for row in history.execute("SELECT name FROM tasks")}
        events = {row[0] for row in history.execute("SELECT event_name FROM task_events")}
    assert {"Train", "Evaluate"} <= names
    assert {"RUNNING", "DONE"} <= events


def test_sweep_with_two_workers_writes_its_table(luigid, pattern_dir, tmp_path):
    grid = json.dumps({"learning_rate": [0.01, 0.03], "seed": [66478, 7]})
    result = subprocess.run(
        luigi_command("Sweep", *luigid.flags(), "--workers", "2", "--Sweep-grid", grid,
                      *data_flags(pattern_dir, tmp_path / "out", "--Train-epochs", "1")),
        cwd=REPO_ROOT, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, output_of(result)
    (sweep,) = [path for path in (tmp_path / "out" / "sweep").iterdir() if not path.name.startswith(".")]
    rows = json.loads((sweep / "results.json").read_text())
    assert len(rows) == 4
    assert {tuple(sorted(row["params"].items())) for row in rows} == {
        (("learning_rate", lr), ("seed", seed)) for lr in (0.01, 0.03) for seed in (66478, 7)}
    assert [row["test_error"] for row in rows] == sorted(row["test_error"] for row in rows)
    assert all(Path(row["evaluate_dir"], "metrics.json").is_file() for row in rows)
    table = (sweep / "results.md").read_text()
    assert table.count("\n| ") == 4 and "test error %" in table


def test_two_workers_started_together_run_each_task_once(luigid, pattern_dir, tmp_path):
    """Separate pid-lock directories stand for two hosts: only the scheduler keeps them apart."""
    outputs = tmp_path / "out"
    command = luigi_command("Evaluate", *luigid.flags(), *data_flags(pattern_dir, outputs, "--Train-epochs", "3"))
    first, second = (subprocess.Popen([*command, "--lock-pid-dir", str(tmp_path / host)], cwd=REPO_ROOT,
                                      env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True) for host in ("host-a", "host-b"))
    outputs_text = [process.communicate(timeout=600)[0] for process in (first, second)]
    # A worker some of whose tasks another worker ran exits 10 or 25, by Luigi's retcodes.
    assert {first.returncode, second.returncode} <= {0, 10, 25}, outputs_text
    assert any("Test error: " in text for text in outputs_text), (first.returncode, second.returncode, outputs_text)
    log = (outputs / "pipeline.log").read_text()
    for family in ("Download", "ExtractToNpy", "SplitValidation", "Train", "Evaluate"):
        assert log.count(f" {family} wrote ") == 1, f"{family} ran more than once"
    with sqlite3.connect(luigid.history) as history:
        runs = history.execute(
            "SELECT t.name, COUNT(*) FROM task_events e JOIN tasks t ON e.task_id = t.id "
            "WHERE e.event_name = 'RUNNING' GROUP BY t.name").fetchall()
    assert dict(runs) == {name: 1 for name in ("Download", "ExtractToNpy", "SplitValidation", "Train", "Evaluate")}


def wait_for_ui(process: subprocess.Popen, port: int, timeout: float = 30) -> None:
    """Wait until luigid serves its web UI on ``port``; fail if it exits first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/visualiser/index.html", timeout=2) as reply:
                assert b"Luigi" in reply.read()
            return
        except OSError:
            assert process.poll() is None, "luigid exited"
            assert time.monotonic() < deadline, "luigid did not serve its UI"
            time.sleep(0.2)


def fresh_checkout(destination: Path) -> Path:
    """Copy the repository's tracked files, as a fresh clone would have them, to ``destination``."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (REPO_ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, destination / name)
    return destination


def test_plain_luigid_from_a_fresh_checkout_serves_the_ui_and_keeps_history(tmp_path):
    checkout = fresh_checkout(tmp_path / "clone")
    port = free_port()
    process = subprocess.Popen([str(Path(sys.executable).with_name("luigid")), "--port", str(port)],
                               cwd=checkout, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_ui(process, port)
        assert (checkout / "outputs" / "luigid" / "history.db").is_file()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_start_scheduler_keeps_state_and_history_in_its_state_directory(tmp_path):
    port = free_port()
    state = tmp_path / "elsewhere" / "luigid"
    env = {**cli_env(), "LUIGID_PORT": str(port), "LUIGID_STATE_DIR": str(state),
           "PATH": f"{Path(sys.executable).parent}:{cli_env()['PATH']}"}
    process = subprocess.Popen([str(REPO_ROOT / "scripts" / "start-scheduler")], env=env, cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_ui(process, port)
        assert (state / "history.db").is_file() and (state / "log").is_dir()
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert (state / "state.pickle").is_file(), "luigid did not save its state on shutdown"


def test_start_scheduler_explains_a_state_directory_it_cannot_create(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = {**cli_env(), "LUIGID_PORT": str(free_port()), "LUIGID_STATE_DIR": str(blocker / "luigid"),
           "PATH": f"{Path(sys.executable).parent}:{cli_env()['PATH']}"}
    result = subprocess.run([str(REPO_ROOT / "scripts" / "start-scheduler")], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert f"Cannot create luigid's state directory {blocker / 'luigid' / 'log'}" in result.stderr
    assert "--state-dir (LUIGID_STATE_DIR)" in result.stderr and "Traceback" not in result.stderr
