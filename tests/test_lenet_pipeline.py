"""``lenet-pipeline``: one command line for the helpers, each subcommand with its own help and exit codes."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, cli_env

LENET_PIPELINE = str(Path(sys.executable).with_name("lenet-pipeline"))
SUBCOMMANDS = ("runs", "predict", "batch", "forget", "remove", "verify", "copy")


def lenet_pipeline(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([LENET_PIPELINE, *args], cwd=cwd, env=cli_env(), capture_output=True, text=True,
                          timeout=120)


def test_help_lists_every_subcommand():
    result = lenet_pipeline("--help")
    assert result.returncode == 0
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")]
    assert listed == list(SUBCOMMANDS)


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
def test_each_subcommand_has_its_own_help(subcommand):
    result = lenet_pipeline(subcommand, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: lenet-pipeline {subcommand}" in result.stdout


def test_an_unknown_subcommand_exits_2_with_the_list():
    result = lenet_pipeline("train")
    assert result.returncode == 2 and "unknown command 'train'" in result.stderr and "verify" in result.stderr


def test_exit_codes_are_the_modules_own(tmp_path):
    assert lenet_pipeline("verify", "--paths-outputs", str(tmp_path)).returncode == 0
    (tmp_path / "train" / "abc").mkdir(parents=True)
    unfinished = lenet_pipeline("verify", "--paths-outputs", str(tmp_path))
    assert unfinished.returncode == 1 and "no readable meta.json" in unfinished.stdout
    unreadable = lenet_pipeline("predict", "--model", str(tmp_path), str(tmp_path / "missing.png"))
    assert unreadable.returncode == 2 and unreadable.stderr.startswith("error: ")
    listed = lenet_pipeline("runs", "--outputs", str(tmp_path), "list")
    assert listed.returncode == 0 and f"no evaluated runs under {tmp_path}" in listed.stdout
