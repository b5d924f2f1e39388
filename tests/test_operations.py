"""Run as operators run it: overlapping runs, other directories, forked workers, custom data, verify."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT, artifacts, cli_env, custom_run, luigi_command, output_of
from pipeline.data import idx
from pipeline.data.datasets import FILE_NAMES

STEPS = ("download", "extract", "split", "train", "evaluate")


def start(args: list[str], cwd: Path = REPO_ROOT, env: dict | None = None) -> subprocess.Popen:
    """Start ``luigi --module tasks ARGS`` in the background, output captured."""
    return subprocess.Popen(luigi_command(*args), cwd=cwd, env=env or cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def run_pipeline(subcommand: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``lenet-pipeline SUBCOMMAND ARGS`` from the repository root."""
    return subprocess.run([str(Path(sys.executable).with_name("lenet-pipeline")), subcommand, *args],
                          cwd=REPO_ROOT, env=cli_env(), capture_output=True, text=True, timeout=600)


def staging_leftovers(outputs: Path) -> list[Path]:
    return [path for path in outputs.glob("*/.*") if ".tmp-" in path.name or ".unfinished-" in path.name]


@pytest.mark.slow
def test_overlapping_runs_all_succeed_and_train_once_then_verify_checks_every_file(tmp_path):
    outputs = tmp_path / "out"
    flags = ["--local-scheduler", "--data-dataset", "synthetic", "--Train-epochs", "2",
             "--paths-outputs", str(outputs)]
    processes = [
        start(["Evaluate", *flags]),
        start(["Report", *flags]),
        # A third run with its own Luigi lock directory stands for another host on shared storage.
        start(["Evaluate", *flags, "--lock-pid-dir", str(tmp_path / "other-host")]),
    ]
    texts = [process.communicate(timeout=900)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], texts
    for step in (*STEPS, "report"):
        assert len(artifacts(outputs, step)) == 1, f"{step}: {artifacts(outputs, step)}"
    assert staging_leftovers(outputs) == []
    assert not list(outputs.glob("train/*.incomplete"))
    log = (outputs / "pipeline.log").read_text()
    assert log.count("Epoch 1/2") == 1 and log.count("Epoch 2/2") == 1, "a model was trained twice"

    verified = run_pipeline("verify", "--paths-outputs", str(outputs))
    assert verified.returncode == 0, output_of(verified)
    assert "6 artifacts" in verified.stdout and "every file matches" in verified.stdout

    (train,) = artifacts(outputs, "train")
    (evaluation,) = artifacts(outputs, "evaluate")
    with open(train / "history.json", "a") as history:
        history.write(" ")
    (evaluation / "predictions.npy").unlink()
    altered = run_pipeline("verify", "--paths-outputs", str(outputs))
    assert altered.returncode == 1, output_of(altered)
    assert f"{train / 'history.json'}: altered" in altered.stdout
    assert f"{evaluation / 'predictions.npy'}: missing" in altered.stdout

    # A directory without its meta.json is not finished work: the next run makes it again.
    (evaluation / "meta.json").unlink()
    again = subprocess.run(luigi_command("Evaluate", *flags), cwd=REPO_ROOT, env=cli_env(),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, output_of(again)
    assert f"Evaluate {evaluation} is not a finished artifact (it has no readable meta.json); making it again" \
        in output_of(again)
    assert (evaluation / "meta.json").is_file() and (evaluation / "predictions.npy").is_file()


def test_a_failed_run_started_in_another_directory_exits_30(pattern_dir, tmp_path):
    (pattern_dir / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = ["Download", "--local-scheduler", "--data-dataset", "custom", "--data-source", str(pattern_dir),
            "--paths-outputs", str(tmp_path / "out")]
    result = subprocess.run(luigi_command(*args), cwd=elsewhere, env=cli_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 30, output_of(result)
    assert "ERROR: Download failed:" in result.stderr

    # The user's own configuration still overrides the project's settings.
    user_config = tmp_path / "user.cfg"
    user_config.write_text("[retcode]\ntask_failed = 3\n")
    overridden = subprocess.run(luigi_command(*args), cwd=elsewhere,
                                env={**cli_env(), "LUIGI_CONFIG_PATH": str(user_config)},
                                capture_output=True, text=True, timeout=120)
    assert overridden.returncode == 3, output_of(overridden)


def test_outputs_root_is_read_through_luigi_configuration(tmp_path):
    user_config = tmp_path / "user.cfg"
    user_config.write_text(f"[paths]\noutputs = {tmp_path / 'configured'}\n")
    env = {**cli_env(), "LUIGI_CONFIG_PATH": str(user_config)}
    code = ("from tasks.batch import store_from; "
            "print(store_from(['Evaluate']).describe()); print(store_from(['Evaluate', '--paths-outputs=flag']).describe())")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.splitlines() == [str(tmp_path / "configured"), str(tmp_path / "flag")], output_of(result)
    listed = subprocess.run([sys.executable, "-m", "tasks.cli", "runs", "list"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and str(tmp_path / "configured") in output_of(listed), output_of(listed)


@pytest.mark.slow
def test_scheduled_run_with_two_workers_summarises_every_task(tmp_path):
    result = run_pipeline("batch", "Evaluate", "--local-scheduler", "--workers", "2",
                        "--data-dataset", "synthetic", "--Train-epochs", "1", "--paths-outputs", str(tmp_path))
    assert result.returncode == 0, output_of(result)
    (path,) = (tmp_path / "runs").glob("*.json")
    summary = json.loads(path.read_text())
    assert sorted(name.split("(")[0] for name in summary["ran"]) == [
        "Download", "Evaluate", "ExtractToNpy", "SplitValidation", "Train"]
    assert summary["failed"] == []
    (metrics,) = summary["metrics"].values()
    assert metrics["test_error"] == 0.0
    assert not list((tmp_path / "runs").glob(".*")), "the event file was left behind"


def _replace_labels(path: Path) -> None:
    """Rewrite an IDX label file in place with different labels (same size and format)."""
    content = bytearray(idx.read_gzip(path))
    content[8:] = bytes((value + 1) % 10 for value in content[8:])
    idx.write_gzip(path, bytes(content))


def test_custom_data_is_identified_by_the_content_of_its_files(pattern_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(pattern_dir, copy)
    outputs = tmp_path / "out"

    def extract(source: Path) -> subprocess.CompletedProcess:
        args = ["ExtractToNpy", "--local-scheduler", "--data-dataset", "custom", "--data-source", str(source),
                "--paths-outputs", str(outputs)]
        result = subprocess.run(luigi_command(*args), cwd=REPO_ROOT, env=cli_env(),
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, output_of(result)
        return result

    extract(pattern_dir)
    (download,) = artifacts(outputs, "download")
    meta = json.loads((download / "meta.json").read_text())
    assert meta["params"]["gz_sha256"][FILE_NAMES["test_labels"]] == meta["files"][3]["gz_sha256"]
    assert "Did not run any tasks" in output_of(extract(copy)), "an unchanged copy elsewhere was fetched again"

    _replace_labels(pattern_dir / FILE_NAMES["test_labels"])
    changed = extract(pattern_dir)
    assert "Did not run any tasks" not in output_of(changed)
    assert len(artifacts(outputs, "download")) == 2 and len(artifacts(outputs, "extract")) == 2
    new_extract = next(path for path in artifacts(outputs, "extract")
                       if json.loads((path / "meta.json").read_text())["upstream"]["input"] != download.name)
    old_extract = next(path for path in artifacts(outputs, "extract") if path != new_extract)
    assert not np.array_equal(np.load(new_extract / "test_labels.npy"), np.load(old_extract / "test_labels.npy"))


def test_a_missing_custom_file_fails_at_once_naming_it(pattern_dir, tmp_path):
    (pattern_dir / FILE_NAMES["test_images"]).unlink()
    result = subprocess.run(luigi_command(*custom_run(pattern_dir, tmp_path / "out")), cwd=REPO_ROOT,
                            env=cli_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 40, output_of(result)
    assert f"{pattern_dir / FILE_NAMES['test_images']} does not exist" in result.stderr
    assert not (tmp_path / "out" / "download").exists()


SKIPS = re.compile(r"\bpytest\.(importorskip|skip|xfail)\b|\bmark\.(skipif|skip|xfail)\b|\bunittest\.skip")


def test_nothing_turns_a_missing_dependency_into_a_skip():
    """A broken install or a missing package must fail the tests, not turn them into skips or expected failures."""
    offenders = {str(path.relative_to(REPO_ROOT)): SKIPS.findall(path.read_text())
                 for path in sorted(Path(__file__).parent.rglob("*.py")) if path.name != Path(__file__).name}
    assert {path: found for path, found in offenders.items() if found} == {}

