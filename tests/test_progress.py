"""Progress bars appear on terminals only."""

import io

from pipeline.progress import ConsoleProgress


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_bar_is_drawn_on_a_terminal():
    terminal = FakeTerminal()
    progress = ConsoleProgress("Train", stream=terminal, width=10)
    progress.update(0.5, "epoch 5/10", force=True)
    progress.close()
    assert "\rTrain [#####.....]  50%  epoch 5/10" in terminal.getvalue()
    assert terminal.getvalue().endswith("\n")


def test_nothing_is_written_to_a_log_or_pipe():
    log = io.StringIO()
    progress = ConsoleProgress("Train", stream=log)
    progress.update(0.5, "x", force=True)
    progress.close()
    assert log.getvalue() == ""


def test_download_bars_start_a_line_per_file():
    from pipeline.progress import PerFileProgress

    terminal = FakeTerminal()
    bars = PerFileProgress("Download", stream=terminal)
    bars("a.gz", 50, 100)
    bars("a.gz", 100, 100)
    bars("b.gz", 10, 10)
    bars.close()
    text = terminal.getvalue()
    assert "Download a.gz [" in text and "Download b.gz [" in text and text.count("\n") == 2
