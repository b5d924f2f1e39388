"""Progress bars appear on terminals only, and log lines never land on a bar's line."""

import io
import logging

from pipeline.progress import ConsoleProgress, PerFileProgress


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_bar_is_drawn_on_a_terminal():
    terminal = FakeTerminal()
    progress = ConsoleProgress("Train", stream=terminal)
    progress.update(0.5, "epoch 5/10")
    progress.close()
    assert "Train  50%|" in terminal.getvalue() and "epoch 5/10" in terminal.getvalue()
    assert terminal.getvalue().endswith("\n")


def test_nothing_is_written_to_a_log_or_pipe():
    log = io.StringIO()
    progress = ConsoleProgress("Train", stream=log)
    progress.update(0.5, "x")
    progress.close()
    assert log.getvalue() == ""


def test_download_bars_start_a_line_per_file():
    terminal = FakeTerminal()
    bars = PerFileProgress("Download", stream=terminal)
    bars("a.gz", 50, 100)
    bars("a.gz", 100, 100)
    bars("b.gz", 10, 10)
    bars.close()
    text = terminal.getvalue()
    assert "Download a.gz" in text and "Download b.gz" in text and text.count("\n") == 2


def test_log_lines_are_written_through_tqdm_while_a_bar_is_shown(monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    logger = logging.getLogger("pipeline.test_progress")
    handler = logging.StreamHandler(terminal)
    logging.getLogger("pipeline").addHandler(handler)
    try:
        progress = ConsoleProgress("Train", stream=terminal)
        progress.update(0.3, "epoch 0.30")
        logger.warning("a log line")
        progress.close()
        assert handler in logging.getLogger("pipeline").handlers, "the console handler was not given back"
    finally:
        logging.getLogger("pipeline").removeHandler(handler)
    # The line starts a line of its own: the bar was lifted (\r + erase) before it was written.
    line = next(segment for segment in terminal.getvalue().split("\n") if "a log line" in segment)
    assert line.rsplit("\r", 1)[-1].replace("\x1b[A", "").strip() == "a log line"
