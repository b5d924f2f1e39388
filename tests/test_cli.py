"""The real command line, in subprocesses: full chain, no-op rerun, dependents, resume, failures."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT, artifacts, cli_env, custom_run, luigi_command, output_of

SHORT_TRAINING = ["--Train-epochs", "2", "--Train-log-every", "5",
                  "--SplitValidation-validation-size", "200"]


@pytest.mark.slow
def test_chain_over_http_then_noop_then_only_dependents_rerun(pattern_dir, serve, run_cli, tmp_path):
    server = serve(pattern_dir)
    outputs = tmp_path / "out"
    first = run_cli(*custom_run(server.url, outputs, *SHORT_TRAINING))
    assert first.returncode == 0, output_of(first)
    assert "Test error: " in first.stdout
    (evaluation,) = artifacts(outputs, "evaluate")
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert metrics["num_examples"] == 200
    assert metrics["test_error"] < 20.0
    assert str(evaluation / "metrics.json") in first.stdout
    assert len(metrics["confusion_matrix"]) == 10 and len(metrics["per_class_accuracy"]) == 10
    assert metrics["params"]["epochs"] == 2 and metrics["params"]["validation_size"] == 200
    for step in ("download", "extract", "split", "train", "evaluate"):
        (directory,) = artifacts(outputs, step)
        meta = json.loads((directory / "meta.json").read_text())
        assert meta["artifact_id"] == directory.name
        assert {"params", "upstream", "versions", "started", "ended", "duration_s"} <= set(meta)
    (train,) = artifacts(outputs, "train")
    history = json.loads((train / "history.json").read_text())
    assert [record["epoch"] for record in history] == [1, 2]
    assert "Minibatch loss" in (outputs / "pipeline.log").read_text()

    requests_before = len(server.requests)
    again = subprocess.run(luigi_command(*custom_run(server.url, outputs, *SHORT_TRAINING)),
                           cwd=REPO_ROOT, env={**cli_env(), "PYTHONPROFILEIMPORTTIME": "1"},
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, output_of(again)
    assert "Did not run any tasks" in output_of(again)
    assert "| tensorflow" not in again.stderr, "a no-op run imported TensorFlow"
    assert "| submitit" not in again.stderr, "a no-op run imported the Slurm client"
    assert len(server.requests) == requests_before

    stamps = {step: (artifacts(outputs, step)[0] / "meta.json").stat().st_mtime_ns
              for step in ("download", "extract", "split", "train", "evaluate")}
    changed = run_cli(*custom_run(server.url, outputs, *SHORT_TRAINING,
                                  "--SplitValidation-validation-size", "300"))
    assert changed.returncode == 0, output_of(changed)
    counts = {step: len(artifacts(outputs, step)) for step in stamps}
    assert counts == {"download": 1, "extract": 1, "split": 2, "train": 2, "evaluate": 2}
    for step, stamp in stamps.items():
        assert any((d / "meta.json").stat().st_mtime_ns == stamp for d in artifacts(outputs, step))


def tensorboard_points(train_dir: Path) -> list[tuple[str, int]]:
    """Return every (tag, step) of a Train artifact's TensorBoard events, sorted, repeats kept."""
    import tensorflow as tf

    points = []
    for path in (train_dir / "tensorboard").glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            points += [(value.tag, event.step) for value in event.summary.value]
    return sorted(points)


@pytest.mark.slow
def test_killed_training_resumes_exactly_as_an_uninterrupted_run(pattern_dir, tmp_path):
    """At the default settings (dropout 0.5, precision and kernels auto), bit for bit."""
    import keras

    def args(outputs):
        return custom_run(pattern_dir, outputs, "--Train-epochs", "8", "--Train-log-every", "5",
                          "--SplitValidation-validation-size", "200")

    straight = subprocess.run(luigi_command(*args(tmp_path / "straight")), cwd=REPO_ROOT, env=cli_env(),
                              capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, output_of(straight)

    outputs = tmp_path / "out"
    process = subprocess.Popen(luigi_command(*args(outputs)), cwd=REPO_ROOT, env=cli_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, process_group=0)
    deadline = time.monotonic() + 300
    while not list(outputs.glob("train/*.incomplete/ckpt-epoch-0002")):
        assert process.poll() is None, "training ended before its second checkpoint"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert artifacts(outputs, "train") == [], "a killed training left a finished-looking model"
    assert artifacts(outputs, "evaluate") == []

    resumed = subprocess.run(luigi_command(*args(outputs)), cwd=REPO_ROOT, env=cli_env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, output_of(resumed)
    assert "Resuming training from" in output_of(resumed)
    assert "(epoch 0 of" not in output_of(resumed)
    assert not list(outputs.glob("train/*.incomplete")), "checkpoints were not cleaned up"
    assert not list(outputs.glob("*/.*.tmp-*"))

    (train,), (straight_train,) = artifacts(outputs, "train"), artifacts(tmp_path / "straight", "train")
    (evaluation,), (straight_evaluation,) = artifacts(outputs, "evaluate"), artifacts(tmp_path / "straight", "evaluate")
    assert train.name == straight_train.name
    assert (evaluation / "predictions.npy").read_bytes() == (straight_evaluation / "predictions.npy").read_bytes()
    for a, b in zip(keras.models.load_model(train / "model.keras").get_weights(),
                    keras.models.load_model(straight_train / "model.keras").get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    history = json.loads((train / "history.json").read_text())
    assert [record["epoch"] for record in history] == list(range(1, 9))
    assert [record["learning_rate"] for record in history] == pytest.approx([0.01 * 0.95 ** e for e in range(8)])
    # The killed run's partial epoch is not shown twice: every point once, as in the straight run.
    assert tensorboard_points(train) == tensorboard_points(straight_train)


@pytest.mark.slow
def test_synthetic_self_test_reaches_zero_error(run_cli, tmp_path):
    result = run_cli("Evaluate", "--local-scheduler", "--data-dataset", "synthetic",
                     "--paths-outputs", str(tmp_path))
    assert result.returncode == 0, output_of(result)
    assert "Test error: 0.0%" in result.stdout
    (evaluation,) = artifacts(tmp_path, "evaluate")
    assert json.loads((evaluation / "metrics.json").read_text())["test_error"] == 0.0


def test_corrupt_gz_in_local_source_fails_and_leaves_no_artifact(pattern_dir, run_cli, tmp_path):
    broken = pattern_dir / "train-images-idx3-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:5000])
    result = run_cli(*custom_run(pattern_dir, tmp_path / "out"))
    assert result.returncode == 30, output_of(result)
    assert f"{broken} is not a complete gzip file" in result.stderr
    assert [p.name for p in (tmp_path / "out").iterdir() if p.is_dir()] == ["download"]
    assert [path for path in (tmp_path / "out" / "download").iterdir() if path.suffix != ".lock"] == []


def test_checksum_mismatch_of_a_known_dataset_fails(pattern_dir, run_cli, tmp_path):
    result = run_cli("Download", "--local-scheduler", "--data-dataset", "fashion_mnist",
                     "--data-source", str(pattern_dir), "--paths-outputs", str(tmp_path))
    assert result.returncode == 30, output_of(result)
    assert f"Checksum mismatch for {pattern_dir / 'train-images-idx3-ubyte.gz'}" in result.stderr
    assert "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888" in result.stderr
    assert [path for path in (tmp_path / "download").iterdir() if path.suffix != ".lock"] == []


def test_unreachable_source_lists_what_was_tried(run_cli, tmp_path):
    result = run_cli(*custom_run("http://127.0.0.1:9/", tmp_path))
    assert result.returncode == 30, output_of(result)
    assert "Could not fetch train-images-idx3-ubyte.gz. Tried:" in result.stderr
    assert "http://127.0.0.1:9/train-images-idx3-ubyte.gz: " in result.stderr
    assert "(after 3 attempts)" in result.stderr
    assert "--data-source" in result.stderr and "--data-dataset synthetic" in result.stderr


def test_fused_kernels_without_a_compiler_fail_training_and_say_so(pattern_dir, tmp_path):
    env = dict(cli_env(), CXX=str(tmp_path / "no-such-compiler"), LENET_KERNEL_CACHE=str(tmp_path / "kernels"))
    result = subprocess.run(luigi_command(*custom_run(pattern_dir, tmp_path / "out", "--Train-precision",
                                                      "mixed_bfloat16", "--Train-kernels", "fused",
                                                      "--SplitValidation-validation-size", "200")),
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 30, output_of(result)
    assert "ERROR: Train failed: no working C++ compiler" in result.stderr
    assert "--Train-kernels stock" in result.stderr
    assert artifacts(tmp_path / "out", "split") and not artifacts(tmp_path / "out", "train")


@pytest.mark.parametrize("args, message", [
    (["--Train-epochs", "0"], "Train epochs = 0 must be at least 1"),
    (["--Train-batch-size", "0"], "Train batch_size = 0 must be at least 1"),
    (["--Train-precision", "fp8"], "Train precision = 'fp8' is unknown"),
    (["--Train-kernels", "fast"], "Train kernels = 'fast' is unknown"),
    (["--data-dataset", "cifar"], "Unknown dataset 'cifar'"),
    (["--data-dataset", "fashion_mnist", "--SplitValidation-validation-size", "60000"],
     "validation_size = 60000 must be above 0 and below 60000"),
    (["--data-dataset", "custom"], "set [data] source"),
])
def test_bad_parameters_fail_at_once_with_a_message(run_cli, tmp_path, args, message):
    started = time.monotonic()
    result = run_cli("Evaluate", "--local-scheduler", "--paths-outputs", str(tmp_path), *args)
    assert result.returncode == 40, output_of(result)
    assert message in result.stderr
    assert time.monotonic() - started < 20
    assert not (tmp_path / "download").exists()


def one_error_line(result, outputs: Path) -> str:
    """Return the one ``ERROR:`` line of a failed run, checking that no traceback reached the console."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1 and "Traceback" not in output_of(result), output_of(result)
    assert "Traceback (most recent call last)" in (outputs / "pipeline.log").read_text(), "the log lost the traceback"
    return errors[0]


@pytest.mark.parametrize("damage, args, code, message", [
    ("missing file", [], 40, "t10k-labels-idx1-ubyte.gz does not exist"),
    (None, ["--Train-epochs", "0"], 40, "Train epochs = 0 must be at least 1"),
    (None, ["--data-dataset", "cifar"], 40, "Unknown dataset 'cifar'"),
    (None, ["--SplitValidation-validation-size", "5000"], 30,
     "SplitValidation failed: SplitValidation validation_size = 5000 must be above 0 and below 1200"),
    ("corrupt file", [], 30, "Download failed: "),
])
def test_each_bad_input_is_one_error_line_and_its_traceback_goes_to_the_log(pattern_dir, run_cli, tmp_path, damage,
                                                                             args, code, message):
    if damage == "missing file":
        (pattern_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    elif damage == "corrupt file":
        broken = pattern_dir / "train-images-idx3-ubyte.gz"
        broken.write_bytes(broken.read_bytes()[:5000])
    outputs = tmp_path / "out"
    result = run_cli(*custom_run(pattern_dir, outputs), *args)
    assert result.returncode == code, output_of(result)
    assert message in one_error_line(result, outputs)


@pytest.mark.slow
def test_a_full_outputs_disk_names_where_and_how_much_and_a_rerun_after_freeing_space_completes(tmp_path):
    outputs = tmp_path / "small"
    outputs.mkdir()
    run = " ".join([*luigi_command("Evaluate", "--local-scheduler", "--data-dataset", "synthetic", "--Train-epochs",
                                   "1", "--paths-outputs", str(outputs))])
    # A 3 MB tmpfs in a mount namespace of this test's own (unshare works for root and, with user
    # namespaces, for anyone), filled by extraction, then grown to 64 MB for the rerun.
    script = (f"mount -t tmpfs -o size=3m tmpfs {outputs} && {{ {run} 2>{tmp_path}/first.err; echo first=$?; "
              f"ls -A {outputs}/extract | grep -v '[.]lock$'; cp {outputs}/pipeline.log {tmp_path}/first.log; "
              f"mount -o remount,size=64m {outputs} && {run} >/dev/null 2>&1; echo second=$?; }}")
    result = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", script], cwd=REPO_ROOT,
                            env=cli_env(), capture_output=True, text=True, timeout=600)
    assert "first=30" in result.stdout and "second=0" in result.stdout, output_of(result)
    assert result.stdout.split("first=30\n")[1].split("second")[0] == "", "the full disk left a partial artifact"
    errors = [line for line in (tmp_path / "first.err").read_text().splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1 and "Traceback" not in (tmp_path / "first.err").read_text()
    assert f"ERROR: ExtractToNpy failed: The file system of {outputs}/extract (mounted at {outputs}: " in errors[0]
    assert "is full" in errors[0] and "it needs about 4.8 MB" in errors[0] and "--paths-outputs" in errors[0]
    assert "Traceback (most recent call last)" in (tmp_path / "first.log").read_text()
