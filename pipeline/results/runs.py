"""The runs table: every evaluated run in an artifact store, and the difference between two.

What ``lenet-pipeline runs list`` and ``runs diff`` print (their command line is tasks/results.py).

Like ``dvc exp show`` / ``dvc exp diff``: ``list`` prints one row per run with the parameters
that differ between runs (``--all-params`` for all) and the test error; ``diff`` prints the
parameters and metrics that differ between two runs.
"""

import json
from pathlib import Path

from pipeline.artifacts import read_json
from pipeline.errors import ConfigError, PipelineError

METRICS = ("test_error", "test_accuracy", "num_examples")


def load_runs(store) -> list[dict]:
    """Return one record per finished evaluation in an artifact store (pipeline.storage)."""
    runs = []
    for identity in store.ids("evaluate"):
        if not store.status("evaluate", identity).finished:
            continue
        directory = store.fetch("evaluate", identity)
        metrics = read_json(directory / "metrics.json")
        meta = read_json(directory / "meta.json")
        runs.append({
            "run": identity,
            "path": store.uri("evaluate", identity),
            "ended": meta.get("ended", ""),
            "params": {"dataset": metrics.get("dataset"), **metrics.get("params", {})},
            "metrics": {key: metrics[key] for key in METRICS if key in metrics},
            "per_class_accuracy": metrics.get("per_class_accuracy", {}),
        })
    return runs


def parse_filters(filters: list[str]) -> dict[str, str]:
    """Return {param: value} from 'param=value' strings."""
    parsed = {}
    for item in filters:
        if "=" not in item:
            raise ConfigError(f"--filter {item!r}: write it as parameter=value, e.g. epochs=10")
        key, value = item.split("=", 1)
        parsed[key.strip()] = value.strip()
    return parsed


def _matches(run: dict, filters: dict[str, str]) -> bool:
    return all(str(run["params"].get(key)) == value or json.dumps(run["params"].get(key)) == value
               for key, value in filters.items())


def select_runs(runs: list[dict], filters: dict[str, str], sort: str) -> list[dict]:
    """Return the runs matching every filter, sorted by a metric, a parameter, 'ended' or 'run'."""
    chosen = [run for run in runs if _matches(run, filters)]

    def key(run):
        value = run["metrics"].get(sort, run["params"].get(sort, run.get(sort)))
        return (value is None, value if isinstance(value, (int, float)) else str(value))

    return sorted(chosen, key=key)


def format_table(runs: list[dict], all_params: bool = False) -> str:
    """Return the runs as an aligned text table."""
    if not runs:
        return "no evaluated runs"
    names = sorted({name for run in runs for name in run["params"]})
    if not all_params and len(runs) > 1:
        names = [name for name in names if len({json.dumps(run["params"].get(name)) for run in runs}) > 1]
    header = ["run", *names, "test_error %", "ended"]
    rows = [[run["run"], *(str(run["params"].get(name)) for name in names),
             f"{run['metrics'].get('test_error', float('nan')):.2f}", run["ended"]] for run in runs]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join([lines[0], "  ".join("-" * width for width in widths), *lines[1:]])


def find_run(runs: list[dict], name: str) -> dict:
    """Return the run whose id or directory is ``name``."""
    for run in runs:
        if name in (run["run"], run["path"]) or ("://" not in name and str(Path(name).resolve()) == run["path"]):
            return run
    raise PipelineError(f"No evaluated run {name!r}; `lenet-pipeline runs list` shows them.")


def diff_runs(first: dict, second: dict) -> dict:
    """Return {'params': {name: [a, b]}, 'metrics': {name: [a, b, b - a]}} for what differs."""
    params = {name: [first["params"].get(name), second["params"].get(name)]
              for name in sorted(set(first["params"]) | set(second["params"]))
              if first["params"].get(name) != second["params"].get(name)}
    pairs = {name: (first["metrics"].get(name), second["metrics"].get(name)) for name in METRICS}
    for name in sorted(set(first["per_class_accuracy"]) | set(second["per_class_accuracy"])):
        pairs[f"accuracy[{name}]"] = (first["per_class_accuracy"].get(name), second["per_class_accuracy"].get(name))
    metrics = {name: [a, b, None if a is None or b is None else round(b - a, 6)]
               for name, (a, b) in pairs.items() if a != b}
    return {"params": params, "metrics": metrics}


def format_diff(first: dict, second: dict, difference: dict) -> str:
    """Return the difference between two runs as text."""
    lines = [f"{'':24s} {first['run']:>14s} {second['run']:>14s} {'change':>10s}"]
    for name, (a, b) in difference["params"].items():
        lines.append(f"{name:24s} {json.dumps(a):>14s} {json.dumps(b):>14s}")
    for name, (a, b, change) in difference["metrics"].items():
        lines.append(f"{name:24s} {a!s:>14s} {b!s:>14s} {'' if change is None else f'{change:+.4g}':>10s}")
    if len(lines) == 1:
        lines.append("no differences")
    return "\n".join(lines)
