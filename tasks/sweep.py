"""A grid of Train parameters, each trained and evaluated, compared in one table.

    luigi --module tasks Sweep --local-scheduler --workers 2 \\
        --Sweep-grid '{"learning_rate": [0.01, 0.02], "seed": [66478, 1]}'

With ``--Sweep-track`` every run is also logged to MLflow (Track), under one parent run.
"""

import itertools
import json
from pathlib import Path

import luigi

from pipeline.artifacts import read_json, write_json
from pipeline.errors import ConfigError
from tasks.base import ArtifactTask
from tasks.steps import Evaluate, Train
from tasks.tracking import Track


def grid_combinations(grid: dict) -> list[dict]:
    """Return every combination of a {parameter: [values]} grid, in a stable order."""
    names = sorted(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[name] for name in names))]


def comparison_markdown(rows: list[dict]) -> str:
    """Return the sweep's rows as a Markdown table, best test error first."""
    names = sorted({name for row in rows for name in row["params"]})
    lines = ["| rank | " + " | ".join(names) + " | test error % | evaluation |",
             "|" + "---|" * (len(names) + 3)]
    for rank, row in enumerate(rows, 1):
        values = " | ".join(str(row["params"][name]) for name in names)
        lines.append(f"| {rank} | {values} | {row['test_error']:.2f} | `{row['evaluate_dir']}` |")
    return "\n".join(lines) + "\n"


class Sweep(ArtifactTask):
    """Train and evaluate every combination of ``grid``; write results.json and results.md."""

    step = "sweep"
    grid = luigi.DictParameter(
        default={"learning_rate": [0.01, 0.02], "seed": [66478, 1]},
        description='{"train parameter": [values, ...], ...}')
    track = luigi.BoolParameter(
        default=False, description="log every run to MLflow (Track), nested under one parent run")

    def plain_grid(self) -> dict:
        """Return the grid as plain JSON types (Luigi freezes dict parameters)."""
        return json.loads(luigi.DictParameter().serialize(self.grid))

    def validate(self):
        grid = self.plain_grid()
        valid = set(Train.get_param_names()) - {"log_every"}
        for name, values in grid.items():
            if name not in valid:
                raise ConfigError(f"Sweep grid names {name!r}, not a Train parameter; valid: "
                                  f"{', '.join(sorted(valid))}.")
            if not isinstance(values, list) or not values:
                raise ConfigError(f"Sweep grid {name!r} must be a non-empty list of values.")
        if not grid:
            raise ConfigError("Sweep grid is empty: give at least one Train parameter with values.")

    def identity_params(self):
        return {"grid": self.plain_grid()}

    def requires(self):
        step = Track if self.track else Evaluate
        return {f"run{index:03d}": step(train_overrides=combination)
                for index, combination in enumerate(grid_combinations(self.plain_grid()))}

    def evaluations(self) -> dict[str, Evaluate]:
        """Return the sweep's Evaluate tasks by run name (through Track when tracking)."""
        return {name: task.requires()["evaluation"] if self.track else task
                for name, task in self.requires().items()}

    def produce(self, staging):
        rows = []
        for name, evaluation in self.evaluations().items():
            target = evaluation.output()
            metrics = read_json(target.fetch() / "metrics.json")
            rows.append({
                "params": dict(evaluation.train_overrides),
                "test_error": metrics["test_error"],
                "test_accuracy": metrics["test_accuracy"],
                "evaluate_dir": target.path,
                "train_dir": evaluation.input()["model"].path,
            })
        rows.sort(key=lambda row: row["test_error"])
        write_json(Path(staging) / "results.json", rows)
        (Path(staging) / "results.md").write_text(comparison_markdown(rows))
        extra = {"runs": len(rows), "best": rows[0]}
        if self.track:
            extra["mlflow_parent_run"] = self._group_in_mlflow(staging, rows[0]["test_error"])
        return extra

    def _group_in_mlflow(self, staging, best_test_error: float) -> str:
        from pipeline.tracking.runs import group_sweep
        from pipeline.tracking.server import connection_uri

        tracked = [read_json(target.fetch() / "tracking.json") for target in self.input().values()]
        first = tracked[0]
        parent = group_sweep(connection_uri(first["tracking_uri"], next(iter(self.requires().values())).tracking_uri),
                             first["experiment"], self.artifact_id,
                             [record["run_id"] for record in tracked], {"grid": json.dumps(self.plain_grid())},
                             best_test_error, {"results.md": Path(staging) / "results.md"})
        print(f"MLflow: the sweep's {len(tracked)} runs are under parent run {parent} "
              f"(filter: tags.`lenet.sweep_id` = '{self.artifact_id}')", flush=True)
        return parent

    def after_commit(self):
        print(f"Sweep of {len(self.requires())} runs: {self.output().path}/results.md", flush=True)
        print((self.output().fetch() / "results.md").read_text(), flush=True)
