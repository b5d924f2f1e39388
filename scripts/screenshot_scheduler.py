"""Screenshot of luigid's web UI while the pipeline trains, taken with headless Chromium.

    python scripts/screenshot_scheduler.py [--out docs/scheduler-ui.png]

Starts a luigid on a free loopback port (state and history in a temporary directory), runs the
pipeline against it on the synthetic data set with enough epochs to be caught training, waits
until Train reports progress, then has Chromium (Debian's ``chromium`` package) render the task
list. Everything it started is stopped at the end.
"""

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--virtual-time-budget=8000"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def api(port: int, method: str, **data) -> dict:
    query = urllib.parse.urlencode({"data": json.dumps(data)})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/{method}?{query}", timeout=5) as reply:
        return json.loads(reply.read())["response"]


def wait_for(condition, what: str, timeout: float) -> None:
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "scheduler-ui.png")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("Chromium not found: sudo apt-get install chromium")
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        (work / "log").mkdir()
        config = work / "luigid.cfg"
        config.write_text(f"[scheduler]\nrecord_task_history = true\nstate_path = {work}/state.pickle\n"
                          f"[task_history]\ndb_connection = sqlite:///{work}/history.db\n")
        port = free_port()
        env = {"LUIGI_CONFIG_PATH": str(config), "TF_CPP_MIN_LOG_LEVEL": "2", "PATH": str(bin_dir)}
        scheduler = subprocess.Popen([str(bin_dir / "luigid"), "--address", "127.0.0.1", "--port", str(port),
                                      "--logdir", str(work / "log")], cwd=work, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run = None
        try:
            wait_for(lambda: api(port, "task_list", status="DONE") is not None, "luigid", 30)
            run = subprocess.Popen(
                [sys.executable, "-m", "luigi", "--module", "tasks", "Evaluate", "--scheduler-host", "127.0.0.1",
                 "--scheduler-port", str(port), "--data-dataset", "synthetic", "--Train-epochs", "400",
                 "--Train-log-every", "20", "--paths-outputs", str(work / "outputs")],
                cwd=REPO_ROOT, env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": str(bin_dir)},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            def training_reported() -> bool:
                running = api(port, "task_list", status="RUNNING").values()
                return any(task["name"] == "Train" and "validation error" in (task.get("status_message") or "")
                           and (task.get("progress_percentage") or 0) >= 1 for task in running)

            wait_for(training_reported, "Train to report progress", 180)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={work / 'chromium'}",
                            "--window-size=1400,900", f"--screenshot={args.out.resolve()}",
                            f"http://127.0.0.1:{port}/static/visualiser/index.html#tab=tasks"],
                           check=True, capture_output=True, timeout=120)
            print(f"wrote {args.out}")
        finally:
            for process in (run, scheduler):
                if process is not None:
                    process.kill()
                    process.wait()


if __name__ == "__main__":
    main()
