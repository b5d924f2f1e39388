"""``lenet-pipeline``: the pipeline's helper commands under one name (the tasks stay ``luigi --module tasks``).

    lenet-pipeline runs list|diff ...     the runs table, and the difference between two runs
    lenet-pipeline predict IMAGE ...      classes of images with a trained model
    lenet-pipeline batch [TASK] [flags]   a scheduled run for cron or systemd, locked and summarised
    lenet-pipeline forget STEP [flags]    make a step and everything downstream of it run again
    lenet-pipeline remove ARTIFACT ...    delete artifact directories
    lenet-pipeline verify [flags]         re-hash every artifact against its meta.json
    lenet-pipeline copy SOURCE DEST       copy finished artifacts between outputs roots (local, s3://)

Each subcommand takes ``--help`` and exits with the code its module documents.
"""

import sys

PROG = "lenet-pipeline"


def _runs(argv: list[str]) -> int:
    from pipeline.results import runs
    from tasks.config import artifact_store

    return runs.main(argv, f"{PROG} runs", artifact_store)


def _predict(argv: list[str]) -> int:
    from pipeline.results import predict
    from tasks.config import artifact_store

    return predict.main(argv, f"{PROG} predict", artifact_store)


def _batch(argv: list[str]) -> int:
    from tasks import batch

    if argv[:1] in (["-h"], ["--help"]):
        print(f"usage: {PROG} batch [TASK] [luigi flags]\n\n{batch.__doc__}")
        return 0
    return batch.run_batch(argv)


def _manage(command: str):
    def run(argv: list[str]) -> int:
        from tasks import manage

        return manage.main([command, *argv], prog=PROG)

    return run


COMMANDS = {
    "runs": (_runs, "the runs table (list) and the difference between two runs (diff)"),
    "predict": (_predict, "classes and probabilities of images, with a trained model"),
    "batch": (_batch, "one scheduled run (cron, systemd): locked, logged, summarised"),
    "forget": (_manage("forget"), "delete a step's artifacts and everything downstream, so they run again"),
    "remove": (_manage("remove"), "delete artifact directories by path or id"),
    "verify": (_manage("verify"), "re-hash every artifact against its meta.json; exit 1 on any problem"),
    "copy": (_manage("copy"), "copy every finished artifact of one outputs root into another (e.g. into S3)"),
}


def usage() -> str:
    """Return the top-level help text."""
    width = max(len(name) for name in COMMANDS)
    lines = [f"usage: {PROG} COMMAND [ARGS]  ({PROG} COMMAND --help for one command's)", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "The pipeline itself runs as: luigi --module tasks Evaluate --local-scheduler"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lenet-pipeline``; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"{PROG}: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    code = COMMANDS[argv[0]][0](argv[1:])
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
