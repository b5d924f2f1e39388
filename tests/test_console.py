"""What a user sees in a terminal: each line once, no TensorFlow C++ noise, bars that never swallow a log line."""

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time

import pytest

from conftest import REPO_ROOT, cli_env, luigi_command

LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO ")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run_in_terminal(args: list[str], env: dict, timeout: float = 600) -> tuple[int, str]:
    """Run the luigi command with a pseudo-terminal as stdin, stdout and stderr; return (exit code, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    process = subprocess.Popen(luigi_command(*args), cwd=REPO_ROOT, env=env, stdin=slave, stdout=slave,
                               stderr=slave, process_group=0)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer of the terminal has gone
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    process.wait(timeout=30)
    # The terminal turns each "\n" into "\r\n"; what is left of "\r" returns the cursor on a line.
    return process.returncode, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


@pytest.mark.slow
def test_terminal_shows_each_line_once_no_tensorflow_noise_and_no_log_line_on_a_bar(tmp_path):
    code, text = run_in_terminal(["Evaluate", "--local-scheduler", "--data-dataset", "synthetic",
                                  "--Train-epochs", "3", "--Train-log-every", "2",
                                  "--paths-outputs", str(tmp_path)], cli_env())
    assert code == 0, text
    assert "Test error: 0.0%" in text

    assert "luigi-interface:" not in text, "Luigi's lines were printed twice (the root logger's copy)"
    assert text.count("===== Luigi Execution Summary =====") == 2, "the summary was printed more than once"
    assert len(re.findall(r"running +Train\(", text)) == 1
    for noise in ("I0000", "E0000", "absl::InitializeLog", "cudart_stub", "cuda_platform", "cpu_feature_guard"):
        assert noise not in text, f"TensorFlow C++ start-up line shown: {noise}"

    assert re.search(r"Train +\d+%\|", text), "no progress bar was drawn in the terminal"
    log_lines = [line for line in text.split("\n") if LOG_RECORD.search(line)]
    assert any("Minibatch loss" in line for line in log_lines)
    for line in log_lines:
        visible = ANSI.sub("", line.rsplit("\r", 1)[-1])
        assert LOG_RECORD.match(visible), f"a log line was written onto a progress bar: {line!r}"
