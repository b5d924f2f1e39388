"""A throw-away OpenStack Swift with its S3 layer on free loopback ports, all of it in one directory.

Debian's ``swift-proxy``, ``swift-account``, ``swift-container``, ``swift-object`` and ``memcached``:
one-replica rings with one device, every server bound to 127.0.0.1, ``tempauth`` with the user
``test:tester`` (secret ``testing``) behind ``s3api``. Data persists in the directory across
``stop()`` and ``start()``. Used by the tests' ``swift`` fixture and ``benchmarks/s3_store``.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ACCESS_KEY = "test:tester"
SECRET_KEY = "testing"
REGION = "us-east-1"
SERVERS = ("account", "container", "object")
PACKAGES = "swift-proxy swift-account swift-container swift-object memcached"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server_config(directory: Path, kind: str, port: int) -> str:
    return (f"[DEFAULT]\ndevices = {directory / 'devices'}\nmount_check = false\nbind_ip = 127.0.0.1\n"
            f"bind_port = {port}\nworkers = 0\nswift_dir = {directory}\nlog_level = WARNING\n"
            f"disable_fallocate = true\n\n"
            f"[pipeline:main]\npipeline = {kind}-server\n\n[app:{kind}-server]\nuse = egg:swift#{kind}\n\n"
            f"[{kind}-replicator]\n[{kind}-auditor]\n" + ("[container-updater]\n[container-sync]\n"
                                                          if kind == "container" else "")
            + ("[object-updater]\n[object-expirer]\n" if kind == "object" else ""))


def _proxy_config(directory: Path, port: int, memcached_port: int) -> str:
    return (f"[DEFAULT]\nbind_ip = 127.0.0.1\nbind_port = {port}\nworkers = 0\nswift_dir = {directory}\n"
            f"log_level = WARNING\n\n"
            "[pipeline:main]\npipeline = catch_errors gatekeeper healthcheck proxy-logging cache "
            "listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server\n\n"
            "[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\n\n"
            f"[filter:tempauth]\nuse = egg:swift#tempauth\nuser_test_tester = {SECRET_KEY} .admin\n\n"
            f"[filter:s3api]\nuse = egg:swift#s3api\nlocation = {REGION}\n\n"
            f"[filter:cache]\nuse = egg:swift#memcache\nmemcache_servers = 127.0.0.1:{memcached_port}\n\n"
            "[filter:catch_errors]\nuse = egg:swift#catch_errors\n\n"
            "[filter:gatekeeper]\nuse = egg:swift#gatekeeper\n\n"
            "[filter:healthcheck]\nuse = egg:swift#healthcheck\n\n"
            "[filter:proxy-logging]\nuse = egg:swift#proxy_logging\n\n"
            "[filter:listing_formats]\nuse = egg:swift#listing_formats\n\n"
            "[filter:copy]\nuse = egg:swift#copy\n\n"
            "[filter:slo]\nuse = egg:swift#slo\n\n"
            "[filter:dlo]\nuse = egg:swift#dlo\n")


class TemporarySwift:
    """Swift with S3 on 127.0.0.1 in ``directory``: ``endpoint``, ``client()``; ``stop()``/``start()``."""

    def __init__(self, directory: Path, timeout: float = 60):
        missing = [tool for tool in ("swift-proxy-server", "swift-object-server", "swift-ring-builder", "memcached")
                   if shutil.which(tool) is None]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} not found: apt-get install {PACKAGES}")
        self.directory = Path(directory)
        self.timeout = timeout
        self.processes: list[subprocess.Popen] = []
        self.ports = {kind: free_port() for kind in (*SERVERS, "proxy", "memcached")}
        (self.directory / "devices" / "d1").mkdir(parents=True, exist_ok=True)
        for kind in SERVERS:
            builder = self.directory / f"{kind}.builder"
            for command in (["create", "8", "1", "1"],
                            ["add", f"r1z1-127.0.0.1:{self.ports[kind]}/d1", "100"], ["rebalance"]):
                subprocess.run(["swift-ring-builder", str(builder), *command], cwd=self.directory,
                               check=command[0] != "rebalance", capture_output=True)
            (self.directory / f"{kind}-server.conf").write_text(
                _server_config(self.directory, kind, self.ports[kind]))
        (self.directory / "proxy-server.conf").write_text(
            _proxy_config(self.directory, self.ports["proxy"], self.ports["memcached"]))
        self.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['proxy']}"

    def environment(self) -> dict:
        """Return the standard AWS variables that point a client at this store."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION}

    def _spawn(self, command: list[str]) -> None:
        log = open(self.directory / f"{Path(command[0]).name}.log", "ab")
        self.processes.append(subprocess.Popen(command, cwd=self.directory, stdout=log, stderr=log,
                                               start_new_session=True))
        log.close()

    def start(self) -> None:
        """Start memcached and the four servers; return once the proxy answers its health check."""
        self._spawn(["memcached", "-l", "127.0.0.1", "-p", str(self.ports["memcached"]), "-U", "0",
                     "-u", "root" if os.getuid() == 0 else os.environ.get("USER", "nobody"), "-m", "16"])
        for kind in (*SERVERS, "proxy"):
            self._spawn([f"swift-{kind}-server", str(self.directory / f"{kind}-server.conf")])
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/healthcheck", timeout=2) as reply:
                    if reply.status == 200 and self._servers_answer():
                        return
            except OSError:
                pass
            dead = [process.args[0] for process in self.processes if process.poll() is not None]
            if dead or time.monotonic() > deadline:
                self.stop()
                logs = {path.name: path.read_text(errors="replace")[-2000:] for path in self.directory.glob("*.log")}
                raise RuntimeError(f"Swift did not start (exited: {dead}); logs: {logs}")
            time.sleep(0.2)

    def _servers_answer(self) -> bool:
        for kind in SERVERS:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.ports[kind])) != 0:
                    return False
        return True

    def client(self):
        """Return a boto3 S3 client for this store (what the pipeline itself builds, for the tests' checks)."""
        from pipeline.storage.s3 import make_client

        return make_client({"endpoint_url": self.endpoint, "aws_access_key_id": ACCESS_KEY,
                            "aws_secret_access_key": SECRET_KEY, "region_name": REGION})

    def stop(self) -> None:
        """Stop every process this object started (their process groups), and wait for them."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self.processes = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
