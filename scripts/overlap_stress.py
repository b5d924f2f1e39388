"""Overlapping runs on one outputs root: every process must succeed and every model be trained once.

    python scripts/overlap_stress.py [--rounds 10] [--epochs 3] [--keep DIR]

Each round starts ``luigi --module tasks Evaluate`` and ``... Report`` together on a fresh
outputs root (synthetic data); a last round starts three ``Evaluate`` runs with separate Luigi
lock directories, standing for three hosts sharing one file system. After each round it checks:
every exit code is 0, one artifact directory per step, no staging leftovers, and each epoch line
of the training appears once in ``pipeline.log``. Prints one line per round; exits 1 on any failure.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
STEPS = {"Evaluate": ("download", "extract", "split", "train", "evaluate"),
         "Report": ("download", "extract", "split", "train", "evaluate", "report")}


def finished(outputs: Path, step: str) -> list[Path]:
    """Return the finished artifact directories of one step."""
    folder = outputs / step
    return [path for path in folder.iterdir() if path.is_dir() and not path.name.startswith(".")
            and not path.name.endswith(".incomplete")] if folder.is_dir() else []


def run_round(outputs: Path, commands: list[list[str]], epochs: int) -> list[str]:
    """Start ``commands`` together on ``outputs``; return the problems found."""
    processes = [subprocess.Popen([sys.executable, "-m", "luigi", "--module", "tasks", *command],
                                  cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for command in commands]
    texts = [process.communicate()[0] for process in processes]
    problems = [f"{command[0]} exited {process.returncode}: {text.strip().splitlines()[-1:]}"
                for command, process, text in zip(commands, processes, texts) if process.returncode != 0]
    steps = sorted({step for command in commands for step in STEPS[command[0]]})
    problems += [f"{step}: {len(finished(outputs, step))} artifact directories" for step in steps
                 if len(finished(outputs, step)) != 1]
    problems += [f"leftover {path}" for path in [*outputs.glob("*/.*"), *outputs.glob("*/*.incomplete")]
                 if ".tmp-" in path.name or ".unfinished-" in path.name or path.name.endswith(".incomplete")]
    log = (outputs / "pipeline.log").read_text() if (outputs / "pipeline.log").is_file() else ""
    problems += [f"'Epoch {epoch}/{epochs}' logged {log.count(f'Epoch {epoch}/{epochs}:')} times"
                 for epoch in range(1, epochs + 1) if log.count(f"Epoch {epoch}/{epochs}:") != 1]
    return problems


def main() -> int:
    """Run the rounds; print one line each; return 1 if any round had a problem."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="Evaluate + Report rounds")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="keep each round's outputs under this directory")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="overlap-stress-"))
    failed = 0
    rounds = [("Evaluate + Report", [["Evaluate"], ["Report"]])] * args.rounds
    rounds.append(("3 hosts", [["Evaluate", "--lock-pid-dir", str(base / f"host-{host}")] for host in "abc"]))
    for number, (label, commands) in enumerate(rounds, 1):
        outputs = base / f"round-{number:02d}"
        flags = ["--local-scheduler", "--data-dataset", "synthetic", "--Train-epochs", str(args.epochs),
                 "--paths-outputs", str(outputs)]
        started = time.monotonic()
        problems = run_round(outputs, [[*command[:1], *flags, *command[1:]] for command in commands], args.epochs)
        failed += bool(problems)
        print(f"round {number:2d} ({label}, {len(commands)} processes): "
              f"{'; '.join(problems) if problems else 'all exit 0, one artifact per step, trained once'} "
              f"[{time.monotonic() - started:.0f} s]", flush=True)
    print(f"{len(rounds) - failed} of {len(rounds)} rounds clean; outputs under {base}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
