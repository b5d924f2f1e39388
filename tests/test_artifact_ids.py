"""Artifact ids are pinned: moving or renaming code must not change what identifies a result."""

import pytest
from luigi.cmdline_parser import CmdlineParser
from luigi.task_register import Register

import tasks  # noqa: F401 - registers the task families
from tasks.steps import Evaluate


@pytest.mark.parametrize("dataset, evaluate_id, train_id, extract_id", [
    ("synthetic", "7824c138c8c3", "10e6c582613c", "58213d1fc838"),
    ("mnist", "c3616d64862c", "30fe700abff0", "f83d02637a62"),
])
def test_default_run_ids_are_unchanged(dataset, evaluate_id, train_id, extract_id):
    """A changed id here re-runs every user's finished work: bump a code_version on purpose only."""
    Register.clear_instance_cache()  # Luigi caches config and task objects across command lines
    try:
        with CmdlineParser.global_instance(["Evaluate", "--data-dataset", dataset]):
            evaluation = Evaluate()
            ids = (evaluation.artifact_id, evaluation.upstream()["model"].artifact_id,
                   evaluation.upstream()["data"].artifact_id)
    finally:
        Register.clear_instance_cache()
    assert ids == (evaluate_id, train_id, extract_id)
