"""The runs table and the diff of two runs."""

import json

import pytest

from conftest import output_of

from pipeline.artifacts import write_meta, RunClock
from pipeline.results import runs
from pipeline.errors import PipelineError
from pipeline.storage.local import LocalStore
from tasks.results import runs_command


def fake_run(outputs, run_id, epochs, test_error, ended):
    directory = outputs / "evaluate" / run_id
    directory.mkdir(parents=True)
    (directory / "metrics.json").write_text(json.dumps({
        "dataset": "custom", "params": {"epochs": epochs, "seed": 1}, "test_error": test_error,
        "test_accuracy": 1 - test_error / 100, "num_examples": 100,
        "per_class_accuracy": {"0": 1 - test_error / 100}}))
    write_meta(directory, "evaluate", run_id, {}, {}, RunClock(), {"ended": ended})


def main(*argv):
    return runs_command(list(argv), "lenet-pipeline runs")


@pytest.fixture
def outputs(tmp_path):
    fake_run(tmp_path, "aaaaaaaaaaaa", 1, 5.0, "2026-01-01T00:00:00+00:00")
    fake_run(tmp_path, "bbbbbbbbbbbb", 2, 3.0, "2026-01-02T00:00:00+00:00")
    fake_run(tmp_path, "cccccccccccc", 3, 4.0, "2026-01-03T00:00:00+00:00")
    return tmp_path


def test_list_sorts_by_test_error_and_shows_varying_params(outputs, capsys):
    main("--paths-outputs", str(outputs), "list")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "epochs", "test_error", "%", "ended"]
    assert [line.split()[0] for line in lines[2:]] == ["bbbbbbbbbbbb", "cccccccccccc", "aaaaaaaaaaaa"]


def test_list_filters_and_sorts_by_parameter(outputs, capsys):
    main("--paths-outputs", str(outputs), "list", "--sort", "epochs", "--filter", "seed=1", "--json")
    listed = json.loads(capsys.readouterr().out)
    assert [run["params"]["epochs"] for run in listed] == [1, 2, 3]
    main("--paths-outputs", str(outputs), "list", "--filter", "epochs=2", "--json")
    assert [run["run"] for run in json.loads(capsys.readouterr().out)] == ["bbbbbbbbbbbb"]


def test_diff_shows_parameter_and_metric_changes(outputs, capsys):
    main("--paths-outputs", str(outputs), "diff", "aaaaaaaaaaaa", "bbbbbbbbbbbb", "--json")
    difference = json.loads(capsys.readouterr().out)
    assert difference["params"] == {"epochs": [1, 2]}
    assert difference["metrics"]["test_error"] == [5.0, 3.0, -2.0]
    assert "seed" not in difference["params"]


def test_only_finished_evaluations_are_runs(outputs, capsys):
    fake_run(outputs, "dddddddddddd", 4, 1.0, "2026-01-04T00:00:00+00:00")
    (outputs / "evaluate" / "dddddddddddd" / "metrics.json").write_text("{}")  # altered: another size
    staging = outputs / "evaluate" / ".eeeeeeeeeeee.tmp-host-1-abcdef"
    staging.mkdir()
    (staging / "metrics.json").write_text("{}")
    copied = outputs / "evaluate" / "ffffffffffff"
    copied.mkdir()
    (copied / "metrics.json").write_text((outputs / "evaluate" / "aaaaaaaaaaaa" / "metrics.json").read_text())
    main("--paths-outputs", str(outputs), "list", "--json")
    assert sorted(run["run"] for run in json.loads(capsys.readouterr().out)) == [
        "aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"]


def test_unknown_run_is_a_clear_error(outputs):
    with pytest.raises(PipelineError, match="No evaluated run 'nope'"):
        main("--paths-outputs", str(outputs), "diff", "nope", "aaaaaaaaaaaa")


@pytest.mark.slow
def test_two_real_runs_are_listed_and_diffed(pattern_dir, run_cli, tmp_path):
    for epochs in ("1", "2"):
        result = run_cli("Evaluate", "--local-scheduler", "--data-dataset", "custom", "--data-source",
                         str(pattern_dir), "--paths-outputs", str(tmp_path), "--SplitValidation-validation-size",
                         "200", "--Train-epochs", epochs)
        assert result.returncode == 0, output_of(result)
    listed = runs.select_runs(runs.load_runs(LocalStore(tmp_path)), {}, "epochs")
    assert [run["params"]["epochs"] for run in listed] == [1, 2]
    table = runs.format_table(listed)
    assert "epochs" in table.splitlines()[0] and len(table.splitlines()) == 4
    difference = runs.diff_runs(*listed)
    assert difference["params"] == {"epochs": [1, 2]}
