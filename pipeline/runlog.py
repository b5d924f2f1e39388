"""Logging set-up: the console plus an appended log file under the outputs root."""

import logging
from pathlib import Path

LOG_FILE_NAME = "pipeline.log"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOGGERS = ("pipeline", "tasks", "luigi-interface")


def append_log_file(path: Path, loggers=LOGGERS) -> logging.FileHandler:
    """Append the INFO records of ``loggers`` to ``path``; return the (one, shared) handler.

    Safe to call repeatedly: a logger gets at most one handler per file.
    """
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = [h for name in loggers for h in logging.getLogger(name).handlers
                if getattr(h, "baseFilename", None) == str(path)]
    handler = existing[0] if existing else logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(logging.INFO)
    for name in loggers:
        logger = logging.getLogger(name)
        if handler not in logger.handlers:
            logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
    return handler


def _is_console_handler(handler: logging.Handler) -> bool:
    """Return True for a handler that writes to a stream rather than a file."""
    return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)


def attach_run_log(outputs: Path) -> Path:
    """Send the pipeline's, tasks' and Luigi's log records to ``outputs/pipeline.log`` (appended).

    Also makes sure the pipeline's own INFO records reach the console when Luigi has not
    configured one.
    """
    path = Path(append_log_file(Path(outputs) / LOG_FILE_NAME).baseFilename)
    # absl (under TensorFlow) gives the root logger a console handler the first time it logs, and
    # Luigi's records would then be printed twice: once by Luigi's own handler, once by the root's.
    interface = logging.getLogger("luigi-interface")
    if any(_is_console_handler(handler) for handler in interface.handlers):
        interface.propagate = False
    # Task-level messages are printed by the tasks themselves, so they stay out of the root
    # logger's console handler (which TensorFlow's absl may install); only the library's progress
    # (training lines) needs a console handler of its own.
    tasks = logging.getLogger("tasks")
    tasks.propagate = False
    # ... except their warnings (an unfinished artifact being made again), which the console shows too.
    if not any(_is_console_handler(handler) for handler in tasks.handlers):
        warnings = logging.StreamHandler()
        warnings.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        warnings.setLevel(logging.WARNING)
        tasks.addHandler(warnings)
    library = logging.getLogger("pipeline")
    if not any(_is_console_handler(handler) for handler in library.handlers):
        console = logging.StreamHandler()
        console.setFormatter(logging.Formatter(FORMAT))
        library.addHandler(console)
        library.propagate = False
    return path
