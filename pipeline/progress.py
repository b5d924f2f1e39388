"""Console progress bars for long steps: drawn only when stderr is a terminal, silent in logs and cron."""

import sys
import time


class ConsoleProgress:
    """One self-overwriting line, ``label [#####.....]  45%  detail``, at most 10 redraws a second."""

    def __init__(self, label: str, stream=None, width: int = 30):
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._drawn = False

    def update(self, fraction: float, detail: str = "", force: bool = False) -> None:
        """Redraw the bar at ``fraction`` (0..1) with a short ``detail`` text."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1 and fraction < 1:
            return
        self._last_draw = now
        fraction = min(max(fraction, 0.0), 1.0)
        filled = round(self.width * fraction)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {100 * fraction:3.0f}%  {detail}\033[K")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the bar's line so later output starts on a fresh one."""
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


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
        self._bar.update(received / total if total else 0.0, f"{received:,} bytes", force=received == total)

    def close(self) -> None:
        """End the current file's bar."""
        if self._bar:
            self._bar.close()
