"""One line per predictable failure on the console; the traceback goes to pipeline.log instead.

Luigi prints a traceback for an exception raised while the task graph is built ("Uncaught
exception in luigi"), for a task that fails ("Worker ... failed") and for a ``complete()`` that
raises ("Will not run ..."). For a PipelineError, the failure a user can cause and fix, the
message already names the thing and the fix, so a filter on Luigi's logger keeps the console to
one ``ERROR: <message>`` line (the tasks print their own for failures) and appends the whole
record, traceback included, to ``pipeline.log`` of the outputs root. Every other exception keeps
Luigi's full output: it is a bug to report.
"""

import logging
import traceback
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.runlog import LOG_FILE_NAME, append_log_file

TRACEBACKS = logging.getLogger("tasks.tracebacks")
_log_dir: list[Path] = []


def remember_log_dir(directory: Path) -> None:
    """Say where this run's pipeline.log is (the outputs root, or the cache of an S3 root)."""
    _log_dir[:] = [Path(directory)]


def _pipeline_error_names() -> set[str]:
    found, pending = set(), [PipelineError]
    while pending:
        cls = pending.pop()
        found.update({cls.__name__, f"{cls.__module__}.{cls.__qualname__}"})
        pending.extend(cls.__subclasses__())
    return found


def _ends_in_pipeline_error(text: str) -> bool:
    """Return True when ``text`` is a formatted traceback whose exception is a PipelineError."""
    lines = [line for line in text.splitlines() if line.strip()]
    return "Traceback (most recent call last):" in text and bool(lines) and \
        lines[-1].split(":", 1)[0] in _pipeline_error_names()


def _keep_in_log(text: str) -> None:
    if not _log_dir:
        return
    TRACEBACKS.propagate = False
    append_log_file(_log_dir[0] / LOG_FILE_NAME, ("tasks.tracebacks",))
    TRACEBACKS.error("%s", text)


class OneLineErrors(logging.Filter):
    """On Luigi's logger: PipelineErrors become one line on the console, their tracebacks go to the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, PipelineError):
            _keep_in_log(record.getMessage() + "\n" + "".join(traceback.format_exception(*record.exc_info)))
            if record.getMessage() != "Uncaught exception in luigi":
                return False  # a task's failure: its FAILURE handler prints "ERROR: <Task> failed: ..."
            record.msg, record.args, record.exc_info, record.exc_text = str(error), (), None, None
            return True
        if record.exc_info is None and _ends_in_pipeline_error(record.getMessage()):
            _keep_in_log(record.getMessage())  # "Will not run ... complete() method": said as ERROR already
            return False
        return True


def install() -> None:
    """Put the filter on Luigi's logger (idempotent)."""
    luigi_logger = logging.getLogger("luigi-interface")
    if not any(isinstance(existing, OneLineErrors) for existing in luigi_logger.filters):
        luigi_logger.addFilter(OneLineErrors())
