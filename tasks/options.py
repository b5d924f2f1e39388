"""What every ``lenet-pipeline`` subcommand shares: the outputs flag, the store it names, the exit codes."""

import argparse

# One table for every subcommand (``lenet-pipeline --help`` and docs/operations.md show it);
# ``batch`` exits with Luigi's codes instead, being a Luigi run.
SUCCESS = 0
PROBLEMS_FOUND = 1  # verify found altered or missing files; copy skipped an artifact that failed verification
USAGE_ERROR = 2  # a bad flag or argument (argparse's own code)
RUNTIME_ERROR = 3  # it could not do its job: no such run or model, a store that cannot be reached, a held lock
EXIT_CODES = {SUCCESS: "success", PROBLEMS_FOUND: "problems found (verify, copy)",
              USAGE_ERROR: "usage error: a bad flag or argument",
              RUNTIME_ERROR: "runtime error: the line starting with ERROR: says what and how to fix it"}


def outputs_option(nested: bool = False) -> argparse.ArgumentParser:
    """Return a parent parser with ``--paths-outputs`` (Luigi's own spelling of ``[paths] outputs``).

    ``nested`` for a sub-subcommand's copy, so the flag may stand before or after it.
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--paths-outputs", dest="outputs", metavar="ROOT",
                        default=argparse.SUPPRESS if nested else None,
                        help="outputs root, a directory or s3://BUCKET/PREFIX (default: [paths] outputs "
                             "of Luigi's configuration)")
    return parser


def store_of(args: argparse.Namespace):
    """Return the artifact store of ``--paths-outputs``, else of the configured outputs root."""
    from tasks.config import artifact_store

    return artifact_store(args.outputs)


def luigi_flags(args: argparse.Namespace) -> list[str]:
    """Return ``--paths-outputs ROOT`` for a Luigi command line when the flag was given, else nothing."""
    return ["--paths-outputs", args.outputs] if args.outputs else []
