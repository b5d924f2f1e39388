"""Artifact housekeeping Luigi lacks: force a step to re-run, remove, verify and copy artifacts.

    lenet-pipeline forget Train [luigi flags]         # Train and all downstream of it
    lenet-pipeline remove <artifact id or dir> ... [--paths-outputs ROOT]
    lenet-pipeline verify [--paths-outputs ROOT]      # re-hash every artifact; exit 1 on any problem
    lenet-pipeline copy SOURCE DESTINATION            # e.g. a local outputs root into s3://BUCKET/PREFIX
    lenet-pipeline gc [--paths-outputs ROOT] [--dry-run] [--older-than 24h]

``forget STEP`` builds the task graph that ``luigi --module tasks Evaluate [flags]`` would run
(``--task Sweep`` for another root), deletes the artifacts of every task of family STEP in it
and of every task downstream of those (plus a Train's checkpoints, so it starts afresh), and
leaves everything else, including other parameter sets' artifacts, alone. The next run then
re-runs exactly those steps. ``remove`` deletes the named artifact directories only.
``verify`` re-hashes every file of every artifact under the outputs root against the sizes and
sha256s its ``meta.json`` recorded, prints each missing, altered or unrecorded file and each
directory without a ``meta.json``, and exits 1 if there is any (0 when all match). ``copy``
copies every finished artifact of one outputs root into another that lacks it (re-hashed first;
one that fails is skipped and reported, exit 1), so a local root moves into a bucket.

``gc`` is the only command that removes what runs leave behind (no run deletes what another may
be writing or reading): files no ``meta.json`` or kept checkpoint references, killed runs' staging
directories, finished trainings' checkpoints and idle lock files, each only once the store's own
clock says it has been untouched for ``--older-than`` (default 24h, longer than any step's upload
takes). ``verify`` lists the same garbage as information, without failing on it.
"""

import argparse
import contextlib
import re
from pathlib import Path

import luigi
from luigi.cmdline_parser import CmdlineParser

import tasks  # noqa: F401 - registers the task families
from pipeline.errors import PipelineError
from pipeline.locks import LockHeld
from pipeline.storage import DEFAULT_GC_AGE_S
from tasks.base import ArtifactTask
from tasks.config import artifact_store
from tasks.options import PROBLEMS_FOUND, SUCCESS, luigi_flags, outputs_option, store_of


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


def delete_artifacts(store, artifacts: list[tuple[str, str]]) -> list[str]:
    """Delete ``(step, id)`` artifacts, each while holding its lock; return what was removed.

    Stops with a message, before deleting anything, if a run is making one of them right now.
    """
    removed = []
    with contextlib.ExitStack() as held:
        for step, identity in artifacts:
            try:
                held.enter_context(store.lock(step, identity, wait=False))
            except LockHeld as busy:
                raise PipelineError(f"{store.uri(step, identity)} is being made by a running job ({busy.holder}); "
                                    "nothing removed. Wait for it or stop it, then run this again.") from None
        for step, identity in artifacts:
            removed += store.remove(step, identity)
    return removed


def forget(family: str, root_family: str, luigi_args: list[str]) -> list[str]:
    """Delete the artifacts of ``family`` and its downstream tasks in the root's graph."""
    with CmdlineParser.global_instance([root_family, *luigi_args]) as parser:
        graph = dependency_graph(parser.get_task_obj())
        if not any(task.get_task_family() == family for task in graph):
            families = sorted({task.get_task_family() for task in graph})
            raise PipelineError(f"No {family} in the graph of {root_family}; its steps are: {', '.join(families)}")
        forgotten = tasks_to_forget(graph, family)
        return delete_artifacts(artifact_store(), [(task.step, task.artifact_id) for task in forgotten])


def find_artifact(store, name: str) -> tuple[str, str]:
    """Return (step, id) of an artifact named by its id, or by its directory or URI in the store."""
    text = name.rstrip("/")
    if "://" not in text and "/" in text:
        text = str(Path(text).expanduser().resolve())
    parts = text.split("/")
    if len(parts) >= 2:
        candidates = [(parts[-2], parts[-1])] if store.uri(parts[-2], parts[-1]) == text else []
    else:
        candidates = [(step, text) for step in artifact_steps() if text in store.ids(step)]
    found = [(step, identity) for step, identity in candidates if store.read_meta(step, identity) is not None]
    if len(found) != 1:
        raise PipelineError(f"{name} is not one artifact under {store.describe()} (no meta.json found); "
                            "nothing removed.")
    return found[0]


def artifact_steps() -> list[str]:
    """Return the step names of every artifact-writing task family (the outputs root's step folders)."""
    found, pending = set(), [ArtifactTask]
    while pending:
        family = pending.pop()
        pending.extend(family.__subclasses__())
        if family is not ArtifactTask:
            found.add(family.step)
    return sorted(found)


def copy_artifacts(source, destination) -> tuple[list[str], list[str]]:
    """Copy every finished artifact of ``source`` that ``destination`` lacks, each re-hashed first.

    Returns (what was copied, one line per artifact skipped because it failed verification).
    """
    copied, skipped = [], []
    for step in artifact_steps():
        for identity in source.ids(step):
            if not source.status(step, identity).finished or destination.status(step, identity).finished:
                continue
            problems = source.verify(step, identity)
            if problems:
                skipped.append(f"{source.uri(step, identity)}: not copied, {problems[0]}")
                continue
            with destination.lock(step, identity):
                destination.discard_unfinished(step, identity)
                destination.commit(step, identity, source.fetch(step, identity))
            copied.append(destination.uri(step, identity))
    return copied, skipped


def verify(store) -> tuple[int, list[str]]:
    """Return how many artifacts the store holds and one line per problem found (every file re-hashed)."""
    artifacts = [(step, identity) for step in artifact_steps() for identity in store.ids(step)]
    return len(artifacts), [problem for step, identity in artifacts for problem in store.verify(step, identity)]


def forget_command(argv: list[str], prog: str) -> int:
    """``lenet-pipeline forget STEP [--task ROOT] [luigi flags]``; returns the exit code."""
    parser = argparse.ArgumentParser(prog=prog, parents=[outputs_option()],
                                     description="delete a step's artifacts and everything downstream of it in "
                                                 "the graph your Luigi flags describe, so that they run again")
    parser.add_argument("step", help="task family: Download, ExtractToNpy, SplitValidation, Train, Evaluate, ...")
    parser.add_argument("--task", default="Evaluate", help="root task whose graph is meant (default Evaluate)")
    args, luigi_args = parser.parse_known_args(argv)
    flags = [*luigi_flags(args), *luigi_args]
    return _report_removed(forget(args.step, args.task, flags), store_of(args).describe())


def remove_command(argv: list[str], prog: str) -> int:
    """``lenet-pipeline remove ARTIFACT ... [--paths-outputs ROOT]``; returns the exit code."""
    parser = argparse.ArgumentParser(prog=prog, parents=[outputs_option()],
                                     description="delete artifacts by id, directory or URI")
    parser.add_argument("artifacts", nargs="+", help="artifact ids, directories or s3:// URIs")
    args = parser.parse_args(argv)
    store = store_of(args)
    return _report_removed(delete_artifacts(store, [find_artifact(store, name) for name in args.artifacts]),
                           store.describe())


def _report_removed(removed: list[str], root: str) -> int:
    for path in removed:
        print(f"removed {path}")
    if not removed:
        print(f"nothing to remove under {root}")
    return SUCCESS


def verify_command(argv: list[str], prog: str) -> int:
    """``lenet-pipeline verify [--paths-outputs ROOT]``; returns the exit code."""
    parser = argparse.ArgumentParser(prog=prog, parents=[outputs_option()],
                                     description="re-hash every artifact against its meta.json; exit 1 on any problem "
                                                 "(garbage that gc would remove is listed, and is no problem)")
    store = store_of(parser.parse_args(argv))
    checked, problems = verify(store)
    for problem in problems:
        print(problem)
    print(f"{checked} artifacts under {store.describe()}: "
          + (f"{len(problems)} problems" if problems else "every file matches its meta.json"))
    # Idle lock files are left by every run and cost nothing: gc removes them, verify does not count them.
    garbage = [item for item in store.garbage(artifact_steps(), older_than_s=0) if not item.location.endswith(".lock")]
    if garbage:
        print(f"garbage (information, not a problem): {_amount(garbage)} that no meta.json references; "
              f"lenet-pipeline gc removes it once older than its grace period")
    return PROBLEMS_FOUND if problems else SUCCESS


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Return seconds of a duration such as ``0``, ``90s``, ``30m``, ``24h`` or ``7d``; ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: write a number with s, m, h or d (e.g. 24h)")
    return float(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]


def _amount(items) -> str:
    return f"{len(items)} item{'s' * (len(items) != 1)} ({sum(item.size for item in items) / 1e6:,.1f} MB)"


def gc_command(argv: list[str], prog: str) -> int:
    """``lenet-pipeline gc [--paths-outputs ROOT] [--dry-run] [--older-than DURATION]``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog=prog, parents=[outputs_option()],
        description="remove what no meta.json or kept checkpoint references (files of runs that were killed or "
                    "lost a race), killed runs' staging directories, finished trainings' checkpoints and idle lock "
                    "files, once untouched for --older-than by the store's own clock")
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    parser.add_argument("--older-than", type=parse_duration, default=DEFAULT_GC_AGE_S, metavar="DURATION",
                        help="leave anything younger alone: a run may still be writing it (default 24h; "
                             "0 removes all garbage: only when no run is going)")
    args = parser.parse_args(argv)
    store = store_of(args)
    garbage = store.garbage(artifact_steps(), older_than_s=args.older_than)
    verb = "would remove" if args.dry_run else "removed"
    if not args.dry_run:
        garbage = store.collect(garbage)
    for item in garbage:
        print(f"{verb} {item.location} ({item.size:,} bytes: {item.reason})")
    print(f"{verb} {_amount(garbage)} under {store.describe()}" if garbage
          else f"no garbage older than {args.older_than:g} s under {store.describe()}")
    return SUCCESS


def copy_command(argv: list[str], prog: str) -> int:
    """``lenet-pipeline copy SOURCE DESTINATION``; returns the exit code."""
    parser = argparse.ArgumentParser(prog=prog, description="copy every finished artifact of one outputs root "
                                                            "into another that lacks it (each re-hashed first)")
    parser.add_argument("source", help="outputs root to copy from: a directory or s3://BUCKET/PREFIX")
    parser.add_argument("destination", help="outputs root to copy into: a directory or s3://BUCKET/PREFIX")
    args = parser.parse_args(argv)
    copied, skipped = copy_artifacts(artifact_store(args.source), artifact_store(args.destination))
    for line in [*(f"copied {uri}" for uri in copied), *skipped]:
        print(line)
    print(f"{len(copied)} artifacts copied into {args.destination}, {len(skipped)} skipped")
    return PROBLEMS_FOUND if skipped else SUCCESS
