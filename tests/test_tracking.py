"""Track, Promote and a tracked Sweep against a real ``mlflow server`` (its own venv, SQLite in a temp dir)."""

import json
import subprocess
import sys
import uuid

import numpy as np
import pytest

from conftest import REPO_ROOT, artifacts, cli_env, luigi_command, make_pattern_files, output_of
from pipeline.tracking.registry import CHAMPION, promote

pytestmark = [pytest.mark.mlflow, pytest.mark.slow]


def tracked_env(server_uri: str, **extra) -> dict:
    return {**cli_env(), "MLFLOW_TRACKING_URI": server_uri, **extra}


def pipeline(outputs, source, *args, env):
    """Run ``luigi --module tasks ...`` on the pattern data in ``outputs``; return the result."""
    return subprocess.run(
        luigi_command(*args, "--local-scheduler", "--data-dataset", "custom", "--data-source", str(source),
                      "--paths-outputs", str(outputs), "--SplitValidation-validation-size", "200"),
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def experiment():
    """A fresh experiment name per test module (one server serves every test module)."""
    return f"lenet-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def two_runs(mlflow_server, tmp_path_factory, experiment):
    """Two evaluated and tracked runs on the pattern data, in one outputs root: a learning rate of 1e-6
    for 1 epoch leaves the model near chance, 0.01 for 2 epochs learns the patterns."""
    root = tmp_path_factory.mktemp("tracked")
    source = make_pattern_files(root / "idx")
    env = tracked_env(mlflow_server.uri)
    for train in RUNS:
        result = pipeline(root / "out", source, "Track", "--Track-experiment", experiment, *train, env=env)
        assert result.returncode == 0, output_of(result)
    records = [json.loads((path / "tracking.json").read_text()) for path in artifacts(root / "out", "track")]
    return {"root": root, "source": source, "outputs": root / "out", "env": env,
            "records": sorted(records, key=lambda record: record["test_error"])}


RUNS = (("--Train-epochs", "1", "--Train-learning-rate", "1e-06"), ("--Train-epochs", "2"))


def train_flags(client, record) -> list[str]:
    """Return the Train flags of a tracked run, as its parameters say."""
    params = client.get_run(record["run_id"]).data.params
    return ["--Train-epochs", params["epochs"], "--Train-learning-rate", params["learning_rate"]]


def runs_of(server, experiment: str, filter_string: str = "") -> list:
    client = server.client()
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else list(client.search_runs([found.experiment_id], filter_string))


def test_run_holds_params_epoch_metrics_tags_and_files(mlflow_server, two_runs, experiment):
    client = mlflow_server.client()
    record = next(record for record in two_runs["records"])
    run = client.get_run(record["run_id"])
    evaluation = json.loads((two_runs["outputs"] / "evaluate" / record["evaluate_id"] / "metrics.json").read_text())
    params = run.data.params
    assert params["dataset"] == "custom" and params["validation_size"] == "200"
    for name in ("epochs", "batch_size", "learning_rate", "decay_rate", "momentum", "weight_decay", "dropout", "seed"):
        assert params[name] == str(evaluation["params"][name])
    assert params["precision"] == params["precision_used"] != "auto"
    assert params["kernels"] == params["kernels_used"] != "auto"
    epochs = int(params["epochs"])
    for metric in ("train_loss", "validation_error", "learning_rate", "images_per_s"):
        history = client.get_metric_history(run.info.run_id, metric)
        assert [point.step for point in history] == list(range(1, epochs + 1)), metric
    assert run.data.metrics["test_error"] == pytest.approx(evaluation["test_error"])
    per_class = {key: value for key, value in run.data.metrics.items() if key.startswith("test_accuracy_class/")}
    assert per_class == pytest.approx({f"test_accuracy_class/{name}": value
                                       for name, value in evaluation["per_class_accuracy"].items() if value is not None})
    tags = run.data.tags
    assert tags["lenet.evaluate_id"] == record["evaluate_id"]
    assert tags["lenet.train_id"] == evaluation["upstream"]["model"]
    assert {"lenet.download_id", "lenet.extract_id", "lenet.split_id", "lenet.host"} <= set(tags)
    assert tags["lenet.outputs"] == str(two_runs["outputs"])
    git_head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
    assert tags["mlflow.source.git.commit"] == git_head
    assert run.info.status == "FINISHED"
    logged = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert {"history.json", "metrics.json"} <= logged


def test_logged_model_predicts_like_lenet_pipeline_predict(mlflow_server, two_runs, tmp_path):
    import mlflow.pyfunc

    record = two_runs["records"][0]
    images = np.load(artifacts(two_runs["outputs"], "extract")[0] / "test_images.npy")[:40]
    np.save(tmp_path / "batch.npy", images)
    train_id = mlflow_server.client().get_run(record["run_id"]).data.tags["lenet.train_id"]
    result = subprocess.run([sys.executable, "-m", "tasks.cli", "predict", "--json", "--model",
                             str(two_runs["outputs"] / "train" / train_id), str(tmp_path / "batch.npy")],
                            cwd=REPO_ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, output_of(result)
    expected = [json.loads(line)["class"] for line in result.stdout.splitlines()]
    mlflow.set_tracking_uri(mlflow_server.uri)
    model = mlflow.pyfunc.load_model(record["model_uri"])
    logits = np.asarray(model.predict(images[..., None].astype(np.float32)))
    assert np.argmax(logits, axis=1).tolist() == expected


def test_rerun_logs_nothing_twice(mlflow_server, two_runs, experiment):
    record = two_runs["records"][0]
    before = runs_of(mlflow_server, experiment)
    flags = train_flags(mlflow_server.client(), record)
    rerun = pipeline(two_runs["outputs"], two_runs["source"], "Track", "--Track-experiment", experiment,
                     *flags, env=two_runs["env"])
    assert rerun.returncode == 0 and "Did not run any tasks" in output_of(rerun), output_of(rerun)
    # Without its Track artifact (a second outputs root, a host that lost it), the run is found by its tag.
    (track_dir,) = [path for path in artifacts(two_runs["outputs"], "track")
                    if json.loads((path / "tracking.json").read_text())["run_id"] == record["run_id"]]
    subprocess.run(["rm", "-r", str(track_dir)], check=True)
    again = pipeline(two_runs["outputs"], two_runs["source"], "Track", "--Track-experiment", experiment,
                     *flags, env=two_runs["env"])
    assert again.returncode == 0, output_of(again)
    assert f"is tracked already as run {record['run_id']}" in again.stdout
    assert sorted(run.info.run_id for run in runs_of(mlflow_server, experiment)) == \
        sorted(run.info.run_id for run in before)


def test_half_logged_runs_are_replaced_not_duplicated_and_a_report_is_logged(mlflow_server, tmp_path):
    # What a process killed midway leaves: a RUNNING run with the tag and some metrics; a lost server, FAILED.
    experiment = f"lenet-half-{uuid.uuid4().hex[:8]}"
    source = make_pattern_files(tmp_path / "idx")
    env = tracked_env(mlflow_server.uri)
    # A Report made first: Track logs its page and figures as well.
    reported = pipeline(tmp_path / "out", source, "Report", "--Train-epochs", "1", env=env)
    assert reported.returncode == 0, output_of(reported)
    (evaluation,) = artifacts(tmp_path / "out", "evaluate")
    client = mlflow_server.client()
    experiment_id = client.create_experiment(experiment)
    left = []
    for status in ("RUNNING", "FAILED"):
        run = client.create_run(experiment_id, tags={"lenet.evaluate_id": evaluation.name})
        client.log_metric(run.info.run_id, "train_loss", 2.0, step=1)
        if status == "FAILED":
            client.set_terminated(run.info.run_id, "FAILED")
        left.append(run.info.run_id)
    result = pipeline(tmp_path / "out", source, "Track", "--Track-experiment", experiment, "--Train-epochs", "1",
                      env=env)
    assert result.returncode == 0, output_of(result)
    assert output_of(result).count("was left unfinished") == 2
    (live,) = runs_of(mlflow_server, experiment, f"tags.`lenet.evaluate_id` = '{evaluation.name}'")
    assert live.info.status == "FINISHED" and live.info.run_id not in left
    assert all(client.get_run(run_id).info.lifecycle_stage == "deleted" for run_id in left)
    report = {item.path for item in client.list_artifacts(live.info.run_id, "report")}
    assert {"report/report.html", "report/learning_curves.png", "report/confusion_matrix.png"} <= report


def test_outage_fails_clearly_keeps_evaluation_and_logs_once_after(mlflow_server, tmp_path):
    experiment = f"lenet-outage-{uuid.uuid4().hex[:8]}"
    source = make_pattern_files(tmp_path / "idx")
    env = tracked_env(mlflow_server.uri)
    args = ("Track", "--Track-experiment", experiment, "--Train-epochs", "1")
    evaluated = pipeline(tmp_path / "out", source, "Evaluate", "--Train-epochs", "1", env=env)
    assert evaluated.returncode == 0, output_of(evaluated)
    (evaluation,) = artifacts(tmp_path / "out", "evaluate")
    before = {path.name: path.stat().st_mtime_ns for path in evaluation.iterdir()}
    mlflow_server.stop()
    try:
        failed = pipeline(tmp_path / "out", source, *args, env=env)
    finally:
        mlflow_server.start()
    assert failed.returncode == 30, output_of(failed)
    errors = [line for line in failed.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and "MLFLOW_TRACKING_URI" in errors[0] and "does not answer" in errors[0], errors
    assert "Traceback" not in output_of(failed)
    assert {path.name: path.stat().st_mtime_ns for path in evaluation.iterdir()} == before
    assert artifacts(tmp_path / "out", "track") == []
    recovered = pipeline(tmp_path / "out", source, *args, env=env)
    assert recovered.returncode == 0, output_of(recovered)
    assert len(runs_of(mlflow_server, experiment, f"tags.`lenet.evaluate_id` = '{evaluation.name}'")) == 1


def test_promote_moves_champion_only_forwards(mlflow_server, two_runs, experiment):
    better, worse = two_runs["records"]
    assert better["test_error"] < worse["test_error"], "the two trainings should differ in test error"
    model_name = f"{experiment}-model"
    client = mlflow_server.client()

    def promote_cli(record, *extra):
        result = pipeline(two_runs["outputs"], two_runs["source"], "Promote", "--Track-experiment", experiment,
                          *train_flags(client, record), "--Promote-model-name", model_name, *extra, env=two_runs["env"])
        assert result.returncode == 0, output_of(result)
        decisions = [json.loads((path / "decision.json").read_text())
                     for path in artifacts(two_runs["outputs"], "promote")]
        (decision,) = [decision for decision in decisions
                       if decision["model_name"] == model_name and decision["summary"] in result.stdout]
        assert output_of(result).count(decision["summary"]) == 1, output_of(result)  # said once on the console
        assert decision["summary"] in (two_runs["outputs"] / "pipeline.log").read_text()
        return decision, result

    # Above the bar: registered, not champion.
    first, result = promote_cli(worse, "--Promote-max-test-error", str(worse["test_error"] / 2))
    assert not first["promoted"] and "above max_test_error" in first["reason"] and first["champion_after"] is None
    assert "not promoted" in result.stdout
    # Within the bar: champion.
    second, _ = promote_cli(worse)
    assert second["promoted"] and client.get_model_version_by_alias(model_name, CHAMPION).version == second["version"]
    assert second["version"] == first["version"], "one version per run, however often it is promoted"
    # A better run takes over; the worse one promoted again does not take it back.
    third, result = promote_cli(better)
    assert third["promoted"] and third["champion_before"]["version"] == second["version"]
    assert f"Promoted {model_name} version {third['version']} to champion" in result.stdout
    promote_dir = [path for path in artifacts(two_runs["outputs"], "promote")
                   if json.loads((path / "decision.json").read_text())["version"] == second["version"]
                   and json.loads((path / "decision.json").read_text())["model_name"] == model_name]
    for path in promote_dir:
        subprocess.run(["rm", "-r", str(path)], check=True)
    fourth, result = promote_cli(worse)
    assert not fourth["promoted"] and "not lower than champion" in fourth["reason"]
    assert f"Kept champion {model_name} version {third['version']}" in result.stdout
    assert client.get_model_version_by_alias(model_name, CHAMPION).version == third["version"]
    assert len(client.search_model_versions(f"name = '{model_name}'")) == 2


def test_champion_loads_by_alias(mlflow_server, two_runs, experiment):
    import mlflow.pyfunc

    model_name = f"{experiment}-alias"
    record = two_runs["records"][0]
    decision = promote(mlflow_server.uri, model_name, record, record["test_error"], record["evaluate_id"], None)
    assert decision["promoted"]
    mlflow.set_registry_uri(mlflow_server.uri)
    model = mlflow.pyfunc.load_model(f"models:/{model_name}@{CHAMPION}")
    assert np.asarray(model.predict(np.zeros((2, 28, 28, 1), np.float32))).shape == (2, 10)


def test_tracked_sweep_is_one_group(mlflow_server, tmp_path):
    experiment = f"lenet-sweep-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        luigi_command("Sweep", "--local-scheduler", "--data-dataset", "synthetic", "--Train-epochs", "1",
                      "--Sweep-grid", '{"seed": [1, 2]}', "--Sweep-track", "--Track-experiment", experiment,
                      "--paths-outputs", str(tmp_path / "out")),
        cwd=REPO_ROOT, env=tracked_env(mlflow_server.uri), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, output_of(result)
    (sweep,) = artifacts(tmp_path / "out", "sweep")
    grouped = runs_of(mlflow_server, experiment, f"tags.`lenet.sweep_id` = '{sweep.name}'")
    (parent,) = [run for run in grouped if run.data.tags.get("lenet.role") == "sweep"]
    children = [run for run in grouped if run is not parent]
    assert len(children) == 2
    assert all(run.data.tags["mlflow.parentRunId"] == parent.info.run_id for run in children)
    assert {run.data.params["seed"] for run in children} == {"1", "2"}
    assert parent.data.metrics["best_test_error"] == min(run.data.metrics["test_error"] for run in children)


def test_missing_server_setting_and_missing_client_say_the_fix(tmp_path):
    env = {key: value for key, value in cli_env().items() if key != "MLFLOW_TRACKING_URI"}
    args = ("Track", "--local-scheduler", "--data-dataset", "synthetic", "--paths-outputs", str(tmp_path / "out"))
    unset = subprocess.run(luigi_command(*args), cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert unset.returncode == 40
    assert "ERROR: No MLflow tracking server is configured: set MLFLOW_TRACKING_URI" in unset.stderr
    # The base install, without the mlflow extra: `import mlflow` fails as it would there.
    without = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['mlflow'] = None; from luigi.cmdline import luigi_run; "
         "luigi_run(sys.argv[1:])", "--module", "tasks", *args],
        cwd=REPO_ROOT, env={**env, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}, capture_output=True, text=True,
        timeout=300)
    assert without.returncode == 40
    assert "pip install -e '.[mlflow]'" in without.stderr
    assert artifacts(tmp_path / "out", "train") == [], "nothing is trained for a Track that cannot run"


def test_make_mlflow_serves_from_its_own_environment_with_sqlite_in_the_given_directory(tmp_path):
    import os
    import signal
    import time
    import urllib.request

    from luigid_server import free_port

    port = free_port()
    server = subprocess.Popen(["make", "--no-print-directory", "mlflow", f"MLFLOW_PORT={port}",
                               f"MLFLOW_DIR={tmp_path / 'mlflow'}"], cwd=REPO_ROOT, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
                    assert reply.status == 200
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "make mlflow did not serve"
                time.sleep(0.5)
        assert (tmp_path / "mlflow" / "mlflow.db").is_file()
        group = subprocess.run(["pgrep", "-a", "-g", str(server.pid)], capture_output=True, text=True).stdout
        assert "mlflow server" in group and "mlflow.server.jobs" not in group, group  # its job runner is off
        luigi_side = subprocess.run([sys.executable, "-c", "import sqlalchemy; print(sqlalchemy.__version__)"],
                                    capture_output=True, text=True, check=True).stdout
        server_side = subprocess.run([str(REPO_ROOT / ".venv-mlflow" / "bin" / "python"), "-c",
                                      "import sqlalchemy; print(sqlalchemy.__version__)"],
                                     capture_output=True, text=True, check=True).stdout
        assert luigi_side.startswith("1.4") and server_side.startswith("2.")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


class Interleaved:
    """An MlflowClient whose named calls run a hook once, before or after the real call: forces one interleaving."""

    def __init__(self, inner, before: dict | None = None, after: dict | None = None):
        self.inner, self.before, self.after = inner, dict(before or {}), dict(after or {})

    def __getattr__(self, name):
        real = getattr(self.inner, name)
        if name not in self.before and name not in self.after:
            return real

        def call(*args, **kwargs):
            if name in self.before:
                self.before.pop(name)()
            try:
                return real(*args, **kwargs)
            finally:  # also after a call that raises (no champion yet is an MlflowException)
                if name in self.after:
                    self.after.pop(name)()

        return call


def promote_in_threads(monkeypatch, uri, clients: dict, calls: dict) -> dict:
    """Run ``promote(*calls[name])`` in one thread per name, each with ``clients[name]``; return the decisions."""
    import threading

    from pipeline.tracking import registry

    monkeypatch.setattr(registry, "client", lambda _: clients[threading.current_thread().name])
    decisions, errors = {}, []

    def run(name):
        try:
            decisions[name] = promote(uri, *calls[name])
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(name,), name=name) for name in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    return decisions


def test_two_promotions_that_read_the_same_champion_end_with_the_better_one(mlflow_server, two_runs, experiment,
                                                                           monkeypatch):
    """Both read 'no champion', the better one sets the alias, then the worse one does: it must not stay there."""
    import threading

    better, worse = two_runs["records"]
    model_name = f"{experiment}-race"
    worse_read, better_set = threading.Event(), threading.Event()

    def assert_set(event):
        assert event.wait(60), "the interleaving was not reached"
    clients = {
        "worse": Interleaved(mlflow_server.client(), after={"get_model_version_by_alias": worse_read.set},
                             before={"set_registered_model_alias": lambda: assert_set(better_set)}),
        "better": Interleaved(mlflow_server.client(),
                              before={"set_registered_model_alias": lambda: assert_set(worse_read)},
                              after={"set_registered_model_alias": better_set.set}),
    }
    calls = {name: (model_name, record, record["test_error"], record["evaluate_id"], None)
             for name, record in (("worse", worse), ("better", better))}
    decisions = promote_in_threads(monkeypatch, mlflow_server.uri, clients, calls)
    champion = mlflow_server.client().get_model_version_by_alias(model_name, CHAMPION)
    assert champion.version == decisions["better"]["version"], "the alias moved backwards and stayed"
    assert decisions["better"]["promoted"] and not decisions["worse"]["promoted"]
    assert "meanwhile" in decisions["worse"]["reason"]


def test_two_promotions_of_one_run_register_one_version(mlflow_server, two_runs, experiment, monkeypatch):
    """Both search for the run's version, find none, and create one: one must remain."""
    import threading

    record = two_runs["records"][0]
    model_name = f"{experiment}-once"
    mlflow_server.client().create_registered_model(model_name)
    both_searched = threading.Barrier(2, timeout=60)
    clients = {name: Interleaved(mlflow_server.client(), after={"search_model_versions": both_searched.wait})
               for name in ("first", "second")}
    calls = {name: (model_name, record, record["test_error"], record["evaluate_id"], None) for name in clients}
    decisions = promote_in_threads(monkeypatch, mlflow_server.uri, clients, calls)
    versions = mlflow_server.client().search_model_versions(f"name = '{model_name}'")
    assert len(versions) == 1, [version.version for version in versions]
    assert decisions["first"]["version"] == decisions["second"]["version"] == str(versions[0].version)


def test_track_with_and_without_the_report_at_once_logs_one_run_with_the_report(mlflow_server, two_runs):
    record = two_runs["records"][1]
    experiment = f"lenet-both-{uuid.uuid4().hex[:8]}"
    flags = ["--Track-experiment", experiment, *train_flags(mlflow_server.client(), record)]
    processes = [subprocess.Popen(
        luigi_command(*command, "--local-scheduler", "--data-dataset", "custom", "--data-source",
                      str(two_runs["source"]), "--paths-outputs", str(two_runs["outputs"]),
                      "--SplitValidation-validation-size", "200", *flags),
        cwd=REPO_ROOT, env=two_runs["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for command in (["Track", "--Track-report"], ["Track"])]
    texts = [process.communicate(timeout=600)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], texts
    (run,) = runs_of(mlflow_server, experiment)
    report = {item.path for item in mlflow_server.client().list_artifacts(run.info.run_id, "report")}
    assert "report/report.html" in report, "the run lacks the report one of the two Tracks logs"


def test_track_with_the_report_adds_it_to_a_run_tracked_without(mlflow_server, two_runs, experiment):
    record = two_runs["records"][0]  # tracked without a report by the fixture
    client = mlflow_server.client()
    assert not [item for item in client.list_artifacts(record["run_id"]) if item.path == "report"]
    result = pipeline(two_runs["outputs"], two_runs["source"], "Track", "--Track-report", "--Track-experiment",
                      experiment, *train_flags(client, record), env=two_runs["env"])
    assert result.returncode == 0, output_of(result)
    assert f"is tracked already as run {record['run_id']}" in result.stdout
    report = {item.path for item in client.list_artifacts(record["run_id"], "report")}
    assert {"report/report.html", "report/confusion_matrix.png"} <= report
