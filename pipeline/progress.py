"""Console progress bars for long steps (tqdm): drawn only when stderr is a terminal, silent in logs and cron.

While a bar is shown, the console log handlers of the pipeline's, Luigi's and the root logger
print through ``tqdm.write`` (``logging_redirect_tqdm``), which lifts the bar, writes the line
and redraws the bar below it: a log line never lands on the bar's line.
"""

import logging
import sys

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

CONSOLE_LOGGERS = ("", "luigi-interface", "luigi", "pipeline", "tasks")
STEPS = 1000
BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| "


class ConsoleProgress:
    """One bar, ``label  45%|#####     | detail``, at most 10 redraws a second."""

    def __init__(self, label: str, stream=None):
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar = None
        self._redirect = None

    def _start(self) -> None:
        self._redirect = logging_redirect_tqdm(loggers=[logging.getLogger(name) for name in CONSOLE_LOGGERS])
        self._redirect.__enter__()
        self._bar = tqdm(total=STEPS, desc=self.label, file=self.stream, mininterval=0.1, leave=True,
                         dynamic_ncols=True, bar_format=BAR_FORMAT)

    def update(self, fraction: float, detail: str = "") -> None:
        """Move the bar to ``fraction`` (0..1) with a short ``detail`` text."""
        if not self.enabled:
            return
        if self._bar is None:
            self._start()
        target = round(STEPS * min(max(fraction, 0.0), 1.0))
        # In the format itself: tqdm's postfix field would put ", " before the detail.
        self._bar.bar_format = BAR_FORMAT + detail.replace("{", "{{").replace("}", "}}")
        self._bar.update(target - self._bar.n)

    def close(self) -> None:
        """End the bar's line and give the console back to the log handlers."""
        if self._bar is not None:
            self._bar.close()
            self._redirect.__exit__(None, None, None)
            self._bar = self._redirect = None


class PerFileProgress:
    """One bar per file for download callbacks ``(name, received, total)``."""

    def __init__(self, prefix: str, stream=None):
        self.prefix = prefix
        self.stream = stream
        self._name = None
        self._bar = None

    def __call__(self, name: str, received: int, total: int | None) -> None:
        if name != self._name:
            self.close()
            self._name, self._bar = name, ConsoleProgress(f"{self.prefix} {name}", self.stream)
        self._bar.update(received / total if total else 0.0, f"{received:,} bytes")

    def close(self) -> None:
        """End the current file's bar."""
        if self._bar:
            self._bar.close()
