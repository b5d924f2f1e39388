"""Artifact housekeeping Luigi lacks: force a step to re-run, remove artifacts, verify them all.

    python -m tasks.manage forget Train [luigi flags]   # Train and all downstream of it
    python -m tasks.manage remove <artifact dir or id> ...
    python -m tasks.manage verify [--paths-outputs DIR] # re-hash every artifact; exit 1 on any problem

``forget STEP`` builds the task graph that ``luigi --module tasks Evaluate [flags]`` would run
(``--task Sweep`` for another root), deletes the artifacts of every task of family STEP in it
and of every task downstream of those (plus a Train's checkpoints, so it starts afresh), and
leaves everything else, including other parameter sets' artifacts, alone. The next run then
re-runs exactly those steps. ``remove`` deletes the named artifact directories only.
``verify`` re-hashes every file of every artifact under the outputs root against the sizes and
sha256s its ``meta.json`` recorded, prints each missing, altered or unrecorded file and each
directory without a ``meta.json``, and exits 1 if there is any (0 when all match).
"""

import argparse
import shutil
import sys
from pathlib import Path

import luigi
from luigi.cmdline_parser import CmdlineParser

import tasks  # noqa: F401 - registers the task families
from pipeline.artifacts import lock_holder, verify_artifact
from tasks.base import ArtifactTask
from tasks.config import outputs_root

PROBLEMS_FOUND = 1


def dependency_graph(root: luigi.Task) -> dict:
    """Return {task: [its direct requirements]} for everything ``root`` depends on."""
    graph, pending = {}, [root]
    while pending:
        task = pending.pop()
        if task in graph:
            continue
        graph[task] = list(luigi.task.flatten(task.requires()))
        pending.extend(graph[task])
    return graph


def tasks_to_forget(graph: dict, family: str) -> list:
    """Return the tasks of ``family`` and every task that depends on one of them."""
    forgotten = {task for task in graph if task.get_task_family() == family}
    changed = True
    while changed:
        changed = False
        for task, requirements in graph.items():
            if task not in forgotten and any(requirement in forgotten for requirement in requirements):
                forgotten.add(task)
                changed = True
    return sorted(forgotten, key=str)


def refuse_if_running(artifacts: list[Path]) -> None:
    """Stop with a message if a run is making any of ``artifacts`` right now (it holds the lock)."""
    for artifact in artifacts:
        holder = lock_holder(artifact)
        if holder:
            raise SystemExit(f"{artifact} is being made by a running job ({holder}); nothing removed. "
                             "Wait for it or stop it, then run this again.")


def forget(family: str, root_family: str, luigi_args: list[str]) -> list[Path]:
    """Delete the artifacts of ``family`` and its downstream tasks in the root's graph."""
    with CmdlineParser.global_instance([root_family, *luigi_args]) as parser:
        graph = dependency_graph(parser.get_task_obj())
        if not any(task.get_task_family() == family for task in graph):
            families = sorted({task.get_task_family() for task in graph})
            raise SystemExit(f"No {family} in the graph of {root_family}; its steps are: {', '.join(families)}")
        forgotten = tasks_to_forget(graph, family)
        refuse_if_running([Path(task.output().path) for task in forgotten])
        removed = []
        for task in forgotten:
            paths = [Path(task.output().path)]
            if hasattr(task, "checkpoint_dir"):
                paths.append(task.checkpoint_dir())
            for path in paths:
                if path.exists():
                    shutil.rmtree(path)
                    removed.append(path)
        return removed


def remove(names: list[str]) -> list[Path]:
    """Delete the named artifact directories (paths, or ids looked up under the outputs root)."""
    root = outputs_root()
    removed = []
    for name in names:
        candidates = [Path(name)] if Path(name).is_dir() else sorted(root.glob(f"*/{name}"))
        if len(candidates) != 1 or not (candidates[0] / "meta.json").is_file():
            raise SystemExit(f"{name} is not one artifact directory under {root} (no meta.json found); nothing removed.")
        refuse_if_running(candidates)
        shutil.rmtree(candidates[0])
        removed.append(candidates[0])
    return removed


def artifact_steps() -> list[str]:
    """Return the step names of every artifact-writing task family (the outputs root's step folders)."""
    found, pending = set(), [ArtifactTask]
    while pending:
        family = pending.pop()
        pending.extend(family.__subclasses__())
        if family is not ArtifactTask:
            found.add(family.step)
    return sorted(found)


def artifact_directories(root: Path) -> list[Path]:
    """Return every artifact directory under ``root``: not staging, lock or checkpoint entries."""
    return [path for step in artifact_steps() for path in sorted((root / step).glob("*"))
            if path.is_dir() and not path.name.startswith(".") and not path.name.endswith(".incomplete")]


def verify(root: Path) -> tuple[int, list[str]]:
    """Return how many artifacts under ``root`` were checked and one line per problem found."""
    directories = artifact_directories(root)
    return len(directories), [problem for directory in directories for problem in verify_artifact(directory)]


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Entry point: ``python -m tasks.manage {forget,remove,verify} ...``; returns the exit code."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    forget_parser = commands.add_parser("forget", help="make a step and everything downstream re-run")
    forget_parser.add_argument("step", help="task family: Download, ExtractToNpy, SplitValidation, Train, Evaluate")
    forget_parser.add_argument("--task", default="Evaluate", help="root task whose graph is meant")
    remove_parser = commands.add_parser("remove", help="delete artifact directories")
    remove_parser.add_argument("artifacts", nargs="+", help="artifact directories or ids")
    commands.add_parser("verify", help="re-hash every artifact against its meta.json; exit 1 on any problem")
    args, luigi_args = parser.parse_known_args(argv)
    if args.command == "verify":
        with CmdlineParser.global_instance(["Evaluate", *luigi_args]):  # for --paths-outputs
            root = outputs_root()
        checked, problems = verify(root)
        for problem in problems:
            print(problem)
        print(f"{checked} artifacts under {root}: "
              + (f"{len(problems)} problems" if problems else "every file matches its meta.json"))
        return PROBLEMS_FOUND if problems else 0
    if args.command == "forget":
        removed = forget(args.step, args.task, luigi_args)
    else:
        with CmdlineParser.global_instance(["Evaluate", *luigi_args]):  # for --paths-outputs
            removed = remove(args.artifacts)
    for path in removed:
        print(f"removed {path}")
    if not removed:
        print("nothing to remove")
    return 0


if __name__ == "__main__":
    sys.exit(main())
