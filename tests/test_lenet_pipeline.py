"""``lenet-pipeline``: one command line for the helpers, each subcommand with its own help and exit codes."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, cli_env, output_of

LENET_PIPELINE = str(Path(sys.executable).with_name("lenet-pipeline"))
SUBCOMMANDS = ("runs", "predict", "batch", "forget", "remove", "verify", "copy", "gc")


def lenet_pipeline(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([LENET_PIPELINE, *args], cwd=cwd, env=cli_env(), capture_output=True, text=True,
                          timeout=120)


def test_help_lists_every_subcommand():
    result = lenet_pipeline("--help")
    assert result.returncode == 0
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ") and line.split()[0].isalpha()]
    assert listed == list(SUBCOMMANDS)


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
def test_each_subcommand_has_its_own_help(subcommand):
    result = lenet_pipeline(subcommand, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: lenet-pipeline {subcommand}" in result.stdout


def test_an_unknown_subcommand_exits_2_with_the_list():
    result = lenet_pipeline("train")
    assert result.returncode == 2 and "unknown command 'train'" in result.stderr and "verify" in result.stderr


def test_every_subcommand_follows_one_exit_code_table(tmp_path):
    assert lenet_pipeline("verify", "--paths-outputs", str(tmp_path)).returncode == 0
    (tmp_path / "train" / "abc").mkdir(parents=True)
    unfinished = lenet_pipeline("verify", "--paths-outputs", str(tmp_path))
    assert unfinished.returncode == 1 and "no readable meta.json" in unfinished.stdout
    for usage in (["verify", "--no-such-flag"], ["runs", "list", "--filter", "epochs"], ["remove"], ["copy", "x"]):
        wrong = lenet_pipeline(*usage)
        assert wrong.returncode == 2 and "usage: lenet-pipeline" in wrong.stderr, (usage, wrong.stderr)
    for runtime in (["predict", "--model", str(tmp_path), str(tmp_path / "missing.png")],
                    ["runs", "diff", "a", "b", "--paths-outputs", str(tmp_path)],
                    ["remove", "nonexistent", "--paths-outputs", str(tmp_path)],
                    ["forget", "Nothing", "--data-dataset", "synthetic", "--paths-outputs", str(tmp_path)]):
        failed = lenet_pipeline(*runtime)
        errors = failed.stderr.splitlines()
        assert failed.returncode == 3 and len(errors) == 1 and errors[0].startswith("ERROR: "), (runtime, failed.stderr)
    help_text = lenet_pipeline("--help").stdout
    assert all(f"  {code}  " in help_text for code in range(4))


@pytest.mark.parametrize("args", [
    ["runs", "--paths-outputs", "{root}", "list"], ["runs", "list", "--paths-outputs", "{root}"],
    ["runs", "list", "--all-params", "--paths-outputs={root}"], ["verify", "--paths-outputs", "{root}"],
    ["forget", "Train", "--paths-outputs", "{root}", "--data-dataset", "synthetic"],
    ["remove", "--paths-outputs", "{root}", "abc"],
])
def test_the_outputs_flag_is_luigis_and_goes_anywhere_after_the_subcommand(tmp_path, args):
    result = lenet_pipeline(*(arg.format(root=tmp_path) for arg in args))
    assert str(tmp_path) in output_of(result) and result.returncode in (0, 3), output_of(result)


@pytest.mark.parametrize("subcommand", ["runs", "predict", "forget", "remove", "verify"])
def test_help_lists_the_outputs_flag(subcommand):
    assert "--paths-outputs ROOT" in lenet_pipeline(subcommand, "--help").stdout
