"""luigid for this project: its state file, task history and logs together in one state directory.

    python -m tasks.scheduler [--address 127.0.0.1] [--port PORT] [--state-dir DIR] [luigid flags]

``scripts/start-scheduler`` runs this with its ``LUIGID_*`` variables. The state directory
defaults to ``<outputs>/luigid`` (for an ``s3://`` outputs root, ``~/.cache/lenet-luigi-pipeline/luigid``)
and is created when missing; the task history (SQLite) always
lives in it, wherever it is. Plain ``luigid`` from the repository root works too: it reads
``luigi.cfg``, whose history and state paths point into ``outputs/luigid/``.
"""

import argparse
import os
import sys
from pathlib import Path

import luigi.cmdline
import luigi.interface
from luigi.configuration import get_config

from pipeline.storage import default_cache_dir, is_s3
from tasks.config import outputs_location


def set_option(section: str, option: str, value: str) -> None:
    """Set a Luigi configuration value for this process."""
    config = get_config()
    if not config.has_section(section):
        config.add_section(section)
    config.set(section, option, value)


def main(argv: list[str] | None = None) -> None:
    """Start luigid with history and state in the state directory (blocks until stopped)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1", help="interface to listen on (0.0.0.0: all)")
    parser.add_argument("--port", default=None,
                        help="default: [core] scheduler_port (tasks/project.cfg), the port the workers use")
    parser.add_argument("--state-dir", type=Path, default=None, help="default: <outputs>/luigid")
    args, luigid_args = parser.parse_known_args(argv)
    args.port = args.port or str(luigi.interface.core().scheduler_port)
    outputs = outputs_location()
    default_state = (default_cache_dir() if is_s3(outputs) else Path(outputs)) / "luigid"
    state = (args.state_dir or default_state).expanduser().resolve()
    try:
        (state / "log").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SystemExit(f"Cannot create luigid's state directory {state / 'log'}: {error}. It must be a "
                         f"directory this user (uid {os.getuid()}) can write: e.g. chown -R {os.getuid()} "
                         f"{state}, or choose another with --state-dir (LUIGID_STATE_DIR).") from None
    set_option("scheduler", "record_task_history", "true")
    set_option("task_history", "db_connection", f"sqlite:///{state / 'history.db'}")
    print(f"luigid on http://{args.address}:{args.port}, state and task history in {state}", flush=True)
    luigi.cmdline.luigid(["--address", args.address, "--port", str(args.port),
                          "--state-path", str(state / "state.pickle"), "--logdir", str(state / "log"),
                          *luigid_args])


if __name__ == "__main__":
    main(sys.argv[1:])
