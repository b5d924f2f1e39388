"""``lenet-pipeline``: the pipeline's helper commands under one name (the tasks stay ``luigi --module tasks``).

    lenet-pipeline runs list|diff ...     the runs table, and the difference between two runs
    lenet-pipeline predict IMAGE ...      classes of images with a trained model
    lenet-pipeline batch [TASK] [flags]   a scheduled run for cron or systemd, locked and summarised
    lenet-pipeline forget STEP [flags]    make a step and everything downstream of it run again
    lenet-pipeline remove ARTIFACT ...    delete artifacts
    lenet-pipeline verify [flags]         re-hash every artifact against its meta.json
    lenet-pipeline copy SOURCE DEST       copy finished artifacts between outputs roots (local, s3://)
    lenet-pipeline gc [--dry-run] [--older-than AGE]   remove what no meta.json references

Every subcommand that reads an outputs root takes ``--paths-outputs ROOT`` (Luigi's own flag for
``[paths] outputs``) anywhere after its name, and all of them exit with the codes of
tasks.options (``batch`` with Luigi's, being a Luigi run).
"""

import sys

from pipeline.errors import PipelineError
from tasks.options import EXIT_CODES, RUNTIME_ERROR, SUCCESS, USAGE_ERROR

PROG = "lenet-pipeline"


def _runs(argv: list[str]) -> int:
    from tasks.results import runs_command

    return runs_command(argv, f"{PROG} runs")


def _predict(argv: list[str]) -> int:
    from tasks.results import predict_command

    return predict_command(argv, f"{PROG} predict")


def _batch(argv: list[str]) -> int:
    from tasks import batch

    if argv[:1] in (["-h"], ["--help"]):
        print(f"usage: {PROG} batch [TASK] [luigi flags, e.g. --paths-outputs ROOT]\n\n{batch.__doc__}")
        return SUCCESS
    return batch.run_batch(argv)


def _manage(command: str):
    def run(argv: list[str]) -> int:
        from tasks import manage

        return getattr(manage, f"{command}_command")(argv, f"{PROG} {command}")

    return run


COMMANDS = {
    "runs": (_runs, "the runs table (list) and the difference between two runs (diff)"),
    "predict": (_predict, "classes and probabilities of images, with a trained model"),
    "batch": (_batch, "one scheduled run (cron, systemd): locked, logged, summarised; Luigi's exit codes"),
    "forget": (_manage("forget"), "delete a step's artifacts and everything downstream, so they run again"),
    "remove": (_manage("remove"), "delete artifacts by id, directory or URI"),
    "verify": (_manage("verify"), "re-hash every artifact against its meta.json; exit 1 on any problem"),
    "copy": (_manage("copy"), "copy every finished artifact of one outputs root into another (e.g. into S3)"),
    "gc": (_manage("gc"), "remove what no meta.json references (killed runs' files, idle locks), aged by the store"),
}


def usage() -> str:
    """Return the top-level help text."""
    width = max(len(name) for name in COMMANDS)
    lines = [f"usage: {PROG} COMMAND [ARGS]  ({PROG} COMMAND --help for one command's)", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "Every command that reads an outputs root takes --paths-outputs ROOT (a directory or",
              "s3://BUCKET/PREFIX; default: [paths] outputs of Luigi's configuration).", "", "exit codes:"]
    lines += [f"  {code}  {meaning}" for code, meaning in EXIT_CODES.items()]
    lines += ["", "The pipeline itself runs as: luigi --module tasks Evaluate --local-scheduler"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lenet-pipeline``; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return SUCCESS if argv else USAGE_ERROR
    if argv[0] not in COMMANDS:
        print(f"{PROG}: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return USAGE_ERROR
    try:
        return COMMANDS[argv[0]][0](argv[1:]) or SUCCESS
    except PipelineError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return RUNTIME_ERROR


if __name__ == "__main__":
    sys.exit(main())
