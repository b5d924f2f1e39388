"""Many hosts, one artifact store: an S3 root on a real object store, and a shared local root.

Each "host" is a process with its own cache directory (``XDG_CACHE_HOME``), as a container or
another machine has: what one host made or checkpointed reaches the other only through the store.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import (REPO_ROOT, artifacts, bucket_keys, cli_env, luigi_command, make_pattern_files, output_of,
                      s3_env)
from pipeline.locks import exclusive_lock, lock_holder

SYNTHETIC = ["--local-scheduler", "--data-dataset", "synthetic", "--Train-epochs", "1"]


def luigi_run(*args: str, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(luigi_command(*args), cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def lenet_pipeline(*args: str, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("lenet-pipeline")), *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.s3
def test_every_command_works_on_an_s3_root_and_hosts_share_its_artifacts(swift, s3_root, tmp_path):
    host_a, host_b = s3_env(swift, tmp_path / "host-a"), s3_env(swift, tmp_path / "host-b")
    flags = [*SYNTHETIC, "--paths-outputs", s3_root]
    first = luigi_run("Evaluate", *flags, env=host_a)
    assert first.returncode == 0, output_of(first)
    assert f"Test error: 0.0%  (metrics: {s3_root}/evaluate/" in first.stdout
    keys = bucket_keys(swift, s3_root)
    assert {key.split("/")[0] for key in keys} == {"download", "extract", "split", "train", "evaluate"}
    assert not any(".incomplete/" in key for key in keys), "Train's checkpoints outlived the training"
    (train_meta,) = [key for key in keys if key.startswith("train/") and key.endswith("/meta.json")]
    recorded = json.loads(swift.client().get_object(Bucket=s3_root[5:].split("/")[0],
                                                    Key=f"outputs/{train_meta}")["Body"].read())["checksums"]
    events = [entry for name, entry in recorded.items() if name.startswith("tensorboard/events.out.tfevents.")]
    assert events and all(f"{train_meta[:-len('meta.json')]}data/{entry['sha256']}" in keys for entry in events)

    again = luigi_run("Evaluate", *flags, env={**host_b, "PYTHONPROFILEIMPORTTIME": "1"})
    assert again.returncode == 0 and "Did not run any tasks" in output_of(again), output_of(again)
    assert "| tensorflow" not in again.stderr, "a no-op run on another host imported TensorFlow"

    report = luigi_run("Report", *flags, env=host_b)
    assert report.returncode == 0 and f"Report: {s3_root}/report/" in report.stdout, output_of(report)
    sweep = luigi_run("Sweep", *flags, "--Sweep-grid", '{"seed": [66478, 1]}', env=host_b)
    assert sweep.returncode == 0 and "Sweep of 2 runs" in sweep.stdout, output_of(sweep)

    listed = lenet_pipeline("runs", "--paths-outputs", s3_root, "list", "--json", env=host_a)
    assert listed.returncode == 0, output_of(listed)
    assert sorted(run["params"]["seed"] for run in json.loads(listed.stdout)) == [1, 66478]
    verified = lenet_pipeline("verify", "--paths-outputs", s3_root, env=host_a)
    assert verified.returncode == 0 and "every file matches its meta.json" in verified.stdout, output_of(verified)
    images = tmp_path / "images.npy"
    import numpy as np

    np.save(images, np.full((2, 28, 28), 255, dtype=np.uint8))
    predicted = lenet_pipeline("predict", "--paths-outputs", s3_root, "--model", "latest", "--json", str(images), env=host_a)
    assert predicted.returncode == 0 and len(predicted.stdout.splitlines()) == 2, output_of(predicted)
    batch = lenet_pipeline("batch", "Evaluate", *flags, env=host_a)
    assert batch.returncode == 0 and f"Run summary: {s3_root}/runs/" in batch.stdout, output_of(batch)
    assert [lock_holder(path) for path in (tmp_path / "host-a").rglob("scheduled-run-*.lock")] == [None], \
        "the job lock is still held after the run"

    def finished(step):
        return sorted(key.split("/")[1] for key in bucket_keys(swift, s3_root)
                      if key.startswith(f"{step}/") and key.endswith("/meta.json"))

    trained = finished("train")
    forgotten = lenet_pipeline("forget", "Train", *flags, env=host_a)
    assert forgotten.returncode == 0 and forgotten.stdout.count("removed s3://") == 2, output_of(forgotten)
    (kept,) = finished("train")
    assert len(trained) == 2 and kept in trained and len(finished("evaluate")) == 1
    removed = lenet_pipeline("remove", kept, "--paths-outputs", s3_root, env=host_a)
    assert removed.returncode == 0 and f"removed {s3_root}/train/{kept}" in removed.stdout, output_of(removed)
    assert finished("train") == []


@pytest.mark.slow
@pytest.mark.s3
def test_two_hosts_without_luigid_end_with_one_whole_artifact_per_step(swift, s3_root, tmp_path):
    flags = ["Evaluate", *SYNTHETIC, "--Train-epochs", "2", "--paths-outputs", s3_root]
    # Each with its own Luigi pid-lock directory, as on another host.
    for name in ("a", "b"):
        (tmp_path / name / "pids").mkdir(parents=True)
    hosts = [subprocess.Popen(luigi_command(*flags, "--lock-pid-dir", str(tmp_path / name / "pids")), cwd=REPO_ROOT,
                              env=s3_env(swift, tmp_path / name),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for name in ("a", "b")]
    texts = [host.communicate(timeout=600)[0] for host in hosts]
    assert [host.returncode for host in hosts] == [0, 0], "\n".join(text[-3000:] for text in texts)
    metas = [key for key in bucket_keys(swift, s3_root) if key.endswith("/meta.json")]
    assert sorted(key.split("/")[0] for key in metas) == ["download", "evaluate", "extract", "split", "train"]
    verified = lenet_pipeline("verify", "--paths-outputs", s3_root, env=s3_env(swift, tmp_path / "a"))
    assert verified.returncode == 0, output_of(verified)


@pytest.mark.s3
@pytest.mark.parametrize("problem, expected", [
    ("unreachable", "ERROR: Cannot reach the object store http://127.0.0.1:"),
    ("credentials", "refused the credentials for bucket"),
    ("bucket", "The bucket 'no-such-bucket-anywhere' does not exist"),
])
def test_store_problems_give_one_error_line_and_commit_nothing(swift, s3_root, tmp_path, problem, expected):
    from swift_server import free_port

    env, root = s3_env(swift, tmp_path / "cache"), s3_root
    if problem == "unreachable":
        env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"
    elif problem == "credentials":
        env["AWS_SECRET_ACCESS_KEY"] = "wrong"
    else:
        root = "s3://no-such-bucket-anywhere/outputs"
    started = time.monotonic()
    result = luigi_run("Evaluate", *SYNTHETIC, "--paths-outputs", root, env=env, timeout=120)
    assert result.returncode == 35, output_of(result)
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1 and expected in errors[0], output_of(result)
    assert time.monotonic() - started < 60
    assert bucket_keys(swift, s3_root) == {}


@pytest.mark.s3
def test_luigis_s3_section_configures_the_store_without_aws_variables(swift, s3_root, tmp_path):
    from swift_server import ACCESS_KEY, REGION, SECRET_KEY

    config = tmp_path / "luigi.cfg"
    config.write_text(f"[s3]\nendpoint_url = {swift.endpoint}\naws_access_key_id = {ACCESS_KEY}\n"
                      f"aws_secret_access_key = {SECRET_KEY}\nregion_name = {REGION}\n"
                      f"[paths]\noutputs = {s3_root}\ncache = {tmp_path / 'cache'}\n")
    env = {key: value for key, value in cli_env().items() if not key.startswith("AWS_")}
    env.update(LUIGI_CONFIG_PATH=str(config), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    result = luigi_run("ExtractToNpy", "--local-scheduler", "--data-dataset", "synthetic", env=env)
    assert result.returncode == 0, output_of(result)
    assert {key.split("/")[0] for key in bucket_keys(swift, s3_root)} == {"download", "extract"}
    assert (tmp_path / "cache" / "s3").is_dir(), "[paths] cache was not used"


@pytest.mark.slow
@pytest.mark.s3
def test_a_training_killed_on_one_host_resumes_on_another_from_the_bucket(swift, s3_root, tmp_path):
    data = make_pattern_files(tmp_path / "idx", train_count=9000, test_count=200)
    flags = ["--local-scheduler", "--data-dataset", "custom", "--data-source", str(data), "--paths-outputs",
             s3_root, "--SplitValidation-validation-size", "200", "--Train-epochs", "3"]
    first = subprocess.Popen(luigi_command("Evaluate", *flags), cwd=REPO_ROOT, env=s3_env(swift, tmp_path / "a"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not any(".incomplete/manifests/" in key for key in bucket_keys(swift, s3_root)):
        assert first.poll() is None and time.monotonic() < deadline, "no checkpoint reached the bucket"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert not any(key.startswith("train/") and key.endswith("/meta.json") for key in bucket_keys(swift, s3_root))

    second = luigi_run("Evaluate", *flags, env=s3_env(swift, tmp_path / "b"))
    assert second.returncode == 0, output_of(second)
    assert f"Fetched the work in progress of {s3_root}/train/" in output_of(second)
    assert "Resuming training from " in output_of(second) and " of 3 done)" in output_of(second)
    bucket = s3_root[len("s3://"):].split("/")[0]
    (train_meta,) = [key for key in bucket_keys(swift, s3_root) if key.startswith("train/") and key.endswith("/meta.json")]
    recorded = json.loads(swift.client().get_object(Bucket=bucket, Key=f"outputs/{train_meta}")["Body"].read())
    history_key = f"outputs/{train_meta[:-len('meta.json')]}data/{recorded['checksums']['history.json']['sha256']}"
    history = json.loads(swift.client().get_object(Bucket=bucket, Key=history_key)["Body"].read())
    assert [record["epoch"] for record in history] == [1, 2, 3]
    assert not any(".incomplete/" in key for key in bucket_keys(swift, s3_root))


@pytest.mark.slow
def test_a_damaged_artifact_is_remade_with_one_line_saying_why(tmp_path):
    outputs = tmp_path / "out"
    flags = [*SYNTHETIC, "--paths-outputs", str(outputs)]
    assert luigi_run("Evaluate", *flags, env=cli_env()).returncode == 0
    (train,), (evaluation,) = artifacts(outputs, "train"), artifacts(outputs, "evaluate")
    os.truncate(train / "model.keras", 100)
    (evaluation / "metrics.json").unlink()
    rerun = luigi_run("Evaluate", *flags, env=cli_env())
    assert rerun.returncode == 0, output_of(rerun)
    assert "2 ran successfully" in output_of(rerun)
    warnings = [line for line in rerun.stderr.splitlines() if "is not a finished artifact" in line]
    assert len(warnings) == 2, output_of(rerun)
    assert "model.keras has 100 bytes where meta.json recorded" in warnings[0]
    assert "metrics.json is missing" in warnings[1]
    assert (train / "model.keras").stat().st_size > 100 and (evaluation / "metrics.json").is_file()


@pytest.mark.slow
def test_leftovers_of_other_hosts_go_and_no_lock_is_held_after_the_runs(tmp_path):
    outputs = tmp_path / "out"
    flags = [*SYNTHETIC, "--paths-outputs", str(outputs)]
    assert luigi_run("Evaluate", *flags, env=cli_env()).returncode == 0
    (train,) = artifacts(outputs, "train")
    leftovers = [outputs / "train" / f".{train.name}.tmp-other-host-4242-abcdef",
                 outputs / "train" / f".{train.name}.unfinished-123456"]
    for path in leftovers:
        path.mkdir()
        (path / "model.keras").write_bytes(b"half")
    (outputs / "train" / f".{train.name}.lock").write_text("other-host pid 4242 since 2026-01-01T00:00:00+00:00\n")

    with exclusive_lock(outputs / "train" / f".{train.name}.lock"):
        refused = lenet_pipeline("forget", "Train", *flags, env=cli_env())
        assert refused.returncode != 0 and "is being made by a running job" in output_of(refused)
        assert train.is_dir(), "forget deleted an artifact whose lock another process holds"
    forgotten = lenet_pipeline("forget", "Train", *flags, env=cli_env())
    assert forgotten.returncode == 0, output_of(forgotten)
    rerun = lenet_pipeline("batch", "Evaluate", *flags, env=cli_env())
    assert rerun.returncode == 0, output_of(rerun)
    assert not any(path.exists() for path in leftovers), "another host's staging leftovers stayed"
    assert [lock_holder(path) for path in outputs.rglob("*.lock")] == [None] * len(list(outputs.rglob("*.lock")))
    collected = lenet_pipeline("gc", "--paths-outputs", str(outputs), "--older-than", "0", env=cli_env())
    # The artifacts' idle locks go; a scheduled job's lock (locks/scheduled-run-*.lock) stays for its next run.
    assert collected.returncode == 0 and list(outputs.glob("*/.*.lock")) == [], output_of(collected)


@pytest.mark.slow
@pytest.mark.s3
def test_a_local_outputs_root_moves_into_a_bucket(swift, s3_root, tmp_path):
    outputs = tmp_path / "out"
    env = s3_env(swift, tmp_path / "cache")
    assert luigi_run("Evaluate", *SYNTHETIC, "--paths-outputs", str(outputs), env=env).returncode == 0
    (evaluation,) = artifacts(outputs, "evaluate")
    metrics = evaluation / "metrics.json"
    metrics.write_text(metrics.read_text().replace("1", "2", 1))  # altered, same size
    copied = lenet_pipeline("copy", str(outputs), s3_root, env=env)
    assert copied.returncode == 1, output_of(copied)
    assert "4 artifacts copied" in copied.stdout and f"{evaluation}: not copied" in copied.stdout
    verified = lenet_pipeline("verify", "--paths-outputs", s3_root, env=env)
    assert verified.returncode == 0 and "4 artifacts" in verified.stdout, output_of(verified)
    rerun = luigi_run("Evaluate", *SYNTHETIC, "--paths-outputs", s3_root, env=env)
    assert rerun.returncode == 0 and "1 ran successfully" in output_of(rerun), output_of(rerun)
