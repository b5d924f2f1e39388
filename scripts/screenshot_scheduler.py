"""Screenshot of luigid's web UI while the pipeline trains, taken with headless Chromium.

    python scripts/screenshot_scheduler.py [--out docs/scheduler-ui.png]

Starts a throw-away luigid (``tests/luigid_server.py``), runs the
pipeline against it on the synthetic data set with enough epochs to be caught training, waits
until Train reports progress, then has Chromium (Debian's ``chromium`` package) render the task
list. Everything it started is stopped at the end.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))  # the throw-away luigid the tests use

from luigid_server import TemporaryLuigid  # noqa: E402

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--virtual-time-budget=8000"]


def wait_for(condition, what: str, timeout: float) -> None:
    """Poll ``condition`` until it is true (connection errors count as not yet); exit after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def main() -> None:
    """Run the pipeline against a throw-away luigid and screenshot its task list while Train runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "scheduler-ui.png")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("Chromium not found: sudo apt-get install chromium")
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as work, TemporaryLuigid(Path(work) / "luigid") as scheduler:
        work = Path(work)
        run = subprocess.Popen(
            [sys.executable, "-m", "luigi", "--module", "tasks", "Evaluate", *scheduler.flags(),
             "--data-dataset", "synthetic", "--Train-epochs", "400", "--Train-log-every", "20",
             "--paths-outputs", str(work / "outputs")],
            cwd=REPO_ROOT, env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": str(bin_dir)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            def training_reported() -> bool:
                running = scheduler.api("task_list", status="RUNNING").values()
                return any(task["name"] == "Train" and "validation error" in (task.get("status_message") or "")
                           and (task.get("progress_percentage") or 0) >= 1 for task in running)

            wait_for(training_reported, "Train to report progress", 180)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={work / 'chromium'}",
                            "--window-size=1400,900", f"--screenshot={args.out.resolve()}",
                            f"http://127.0.0.1:{scheduler.port}/static/visualiser/index.html#tab=tasks"],
                           check=True, capture_output=True, timeout=120)
            print(f"wrote {args.out}")
        finally:
            run.kill()
            run.wait()


if __name__ == "__main__":
    main()
