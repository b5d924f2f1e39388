"""docs/parameters.md and the code agree on every parameter and its default."""

import re

import luigi

import tasks
from conftest import REPO_ROOT

CLASSES = {"data": tasks.data, "paths": tasks.paths, "slurm": tasks.slurm, "SplitValidation": tasks.SplitValidation,
           "Train": tasks.Train, "Evaluate": tasks.Evaluate, "Report": tasks.Report, "Sweep": tasks.Sweep,
           "Track": tasks.Track, "Promote": tasks.Promote}
ROW = re.compile(r"^\| (`\[\w+\]`(?:, `\[\w+\]`)*) \| `(\w+)` \| (`[^`]*`|empty) \|", re.M)


def documented() -> dict[tuple[str, str], str]:
    """Return {(section, name): default as documented} from docs/parameters.md's table."""
    table = {}
    for sections, name, default in ROW.findall((REPO_ROOT / "docs" / "parameters.md").read_text()):
        for section in re.findall(r"\[(\w+)\]", sections):
            table[(section, name)] = "" if default == "empty" else default.strip("`")
    return table


def in_code() -> dict[tuple[str, str], luigi.Parameter]:
    """Return {(section, name): parameter} for every parameter a user can set."""
    return {(section, name): parameter for section, cls in CLASSES.items()
            for name, parameter in cls.get_params()}


def test_every_parameter_is_documented_and_nothing_else():
    assert sorted(documented()) == sorted(in_code())


def test_documented_defaults_are_the_codes():
    code = in_code()
    for key, default in documented().items():
        parameter = code[key]
        assert parameter.serialize(parameter.parse(default)) == parameter.serialize(parameter._default), key
