"""A one-node Slurm cluster (Debian's munge, slurmctld and slurmd) on this machine, for the tests.

The node is this machine under its short host name at 127.0.0.1, with its CPUs; there is no
accounting daemon (jobs are followed with scontrol, and finished jobs stay visible for MinJobAge
seconds). munged runs as user munge with its own socket and key, slurmctld and slurmd in the
foreground on free ports; ``stop`` ends exactly those processes. Commands find the cluster
through ``SLURM_CONF`` (``environment()``).
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PARTITION = "lenet"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def missing_commands() -> list[str]:
    """Return the Slurm and munge programs this machine lacks."""
    return [name for name in ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "sinfo")
            if shutil.which(name) is None]


class SlurmCluster:
    """A started one-node cluster; use as a context manager."""

    def __init__(self, root: Path, cpus: int | None = None):
        self.root = root
        self.node = socket.gethostname().split(".")[0]
        self.cpus = cpus or os.cpu_count() or 1
        self.conf = root / "slurm.conf"
        self.processes: list[subprocess.Popen] = []

    def environment(self) -> dict[str, str]:
        """Return the variables a client needs to reach this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def _write_config(self) -> None:
        munge_dir = self.root / "munge"
        for name in ("state", "log", "spool"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        memory_mb = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 - 1024
        self.conf.write_text("\n".join([
            "ClusterName=lenet",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={free_port()}",
            f"SlurmdPort={free_port()}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={munge_dir / 'munge.socket'}",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool'}",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={self.root / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "JobAcctGatherType=jobacct_gather/none",
            "MpiDefault=none",
            "ReturnToService=2",
            "JobRequeue=1",
            "MinJobAge=3600",
            "SchedulerParameters=sched_interval=1",
            "MessageTimeout=30",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={memory_mb} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]))

    def _start_munge(self) -> None:
        munge_dir = self.root / "munge"
        munge_dir.mkdir(exist_ok=True)
        munge_dir.chmod(0o755)  # munged requires its socket's directory to be searchable by all
        key = munge_dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        user = pwd.getpwnam("munge")
        for path in (munge_dir, key):
            os.chown(path, user.pw_uid, user.pw_gid)
        self.processes.append(subprocess.Popen(
            ["runuser", "-u", "munge", "--", "munged", "--foreground", f"--key-file={key}",
             f"--socket={munge_dir / 'munge.socket'}", f"--pid-file={munge_dir / 'munged.pid'}",
             f"--log-file={munge_dir / 'munged.log'}", f"--seed-file={munge_dir / 'munged.seed'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True))
        self._wait(lambda: (munge_dir / "munge.socket").exists(), "munged to open its socket")

    def _daemon(self, program: str) -> None:
        log = open(self.root / "log" / f"{program}.out", "wb")
        self.processes.append(subprocess.Popen([program, "-D", "-f", str(self.conf)], stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True))
        log.close()

    def _wait(self, ready, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{process.args[0]} exited {process.returncode} waiting for {what}: "
                                       f"{self.logs()}")
            time.sleep(0.2)
        raise RuntimeError(f"timed out waiting for {what}: {self.logs()}")

    def logs(self) -> str:
        """Return the tail of the daemons' logs (for failure messages)."""
        texts = []
        for path in sorted((self.root / "log").glob("*")) + [self.root / "munge" / "munged.log"]:
            if path.is_file():
                texts.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-2000:])
        return "\n".join(texts)

    def command(self, *args: str) -> subprocess.CompletedProcess:
        """Run a Slurm client command against this cluster."""
        return subprocess.run(list(args), env={**os.environ, **self.environment()}, capture_output=True,
                              text=True, timeout=60)

    def _node_idle(self) -> bool:
        result = self.command("sinfo", "--noheader", "--format=%t", f"--nodes={self.node}")
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def start(self) -> "SlurmCluster":
        self._write_config()
        self._start_munge()
        self._daemon("slurmctld")
        self._daemon("slurmd")
        self._wait(self._node_idle, f"node {self.node} to be idle in sinfo")
        return self

    def stop(self) -> None:
        """Stop the processes this cluster started (and the jobs' processes under slurmd)."""
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
