"""A small OpenStack Swift with its S3 layer, all of it in one directory: an object store to try S3 roots on.

    python3 deploy/swift/swift_server.py --address 0.0.0.0 --port 8080 --directory /srv/swift --bucket lenet

Debian's ``swift-proxy``, ``swift-account``, ``swift-container``, ``swift-object`` and ``memcached``:
one-replica rings with one device, the storage servers on free loopback ports, the S3 endpoint
(the proxy, ``s3api`` before ``tempauth``) on ``--address``/``--port``, and two users: access key
``test:tester``, secret ``testing``, and ``lenet:ops`` with a distinctive secret (for the tests
that search records for it). Data persists in the directory across restarts. It serves
the tests' ``swift`` fixture, ``benchmarks/s3_store`` and the ``swift`` service of
``docker-compose.s3.yml``; it is no production object store (one replica, no TLS, a fixed user).
"""

import argparse
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
# A second user whose secret is distinctive enough to search for in every record a run leaves.
OPS_ACCESS_KEY = "lenet:ops"
OPS_SECRET_KEY = "Sw1ft-ops-S3cret-4c7e9a"
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


def _proxy_config(directory: Path, address: str, port: int, memcached_port: int) -> str:
    return (f"[DEFAULT]\nbind_ip = {address}\nbind_port = {port}\nworkers = 0\nswift_dir = {directory}\n"
            f"log_level = WARNING\n\n"
            "[pipeline:main]\npipeline = catch_errors gatekeeper healthcheck proxy-logging cache "
            "listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server\n\n"
            "[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\n\n"
            f"[filter:tempauth]\nuse = egg:swift#tempauth\nuser_test_tester = {SECRET_KEY} .admin\n"
            f"user_lenet_ops = {OPS_SECRET_KEY} .admin\n\n"
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
    """Swift with S3 in ``directory``: ``endpoint``, ``client()``; ``stop()``/``start()``.

    The S3 endpoint listens on ``address``:``port`` (default 127.0.0.1 and a free port).
    """

    def __init__(self, directory: Path, timeout: float = 60, address: str = "127.0.0.1", port: int | None = None):
        missing = [tool for tool in ("swift-proxy-server", "swift-object-server", "swift-ring-builder", "memcached")
                   if shutil.which(tool) is None]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} not found: apt-get install {PACKAGES}")
        self.directory = Path(directory)
        self.timeout = timeout
        self.processes: list[subprocess.Popen] = []
        self.address = address
        self.ports = {kind: free_port() for kind in (*SERVERS, "proxy", "memcached")}
        self.ports["proxy"] = port or self.ports["proxy"]
        (self.directory / "devices" / "d1").mkdir(parents=True, exist_ok=True)
        for kind in SERVERS:
            builder = self.directory / f"{kind}.builder"
            # Rebuilt at every start for this start's ports: one device, so the data's place is the same.
            for old in (builder, self.directory / f"{kind}.ring.gz"):
                old.unlink(missing_ok=True)
            for command in (["create", "8", "1", "1"],
                            ["add", f"r1z1-127.0.0.1:{self.ports[kind]}/d1", "100"], ["rebalance"]):
                subprocess.run(["swift-ring-builder", str(builder), *command], cwd=self.directory,
                               check=command[0] != "rebalance", capture_output=True)
            (self.directory / f"{kind}-server.conf").write_text(
                _server_config(self.directory, kind, self.ports[kind]))
        (self.directory / "proxy-server.conf").write_text(
            _proxy_config(self.directory, address, self.ports["proxy"], self.ports["memcached"]))
        self.start()

    @property
    def endpoint(self) -> str:
        """The S3 endpoint as this host reaches it."""
        return f"http://127.0.0.1:{self.ports['proxy']}"

    def environment(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> dict:
        """Return the standard AWS variables that point a client at this store (as ``access_key``)."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": access_key,
                "AWS_SECRET_ACCESS_KEY": secret_key, "AWS_DEFAULT_REGION": REGION}

    def _spawn(self, command: list[str]) -> None:
        log = open(self.directory / f"{Path(command[0]).name}.log", "ab")
        self.processes.append(subprocess.Popen(command, cwd=self.directory, stdout=log, stderr=log,
                                               start_new_session=True))
        log.close()

    def start(self) -> None:
        """Start memcached and the four servers; return once the proxy answers its health check."""
        user = ["-u", "root"] if os.getuid() == 0 else []
        self._spawn(["memcached", "-l", "127.0.0.1", "-p", str(self.ports["memcached"]), "-U", "0", *user, "-m", "16"])
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

    def client(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY):
        """Return a boto3 S3 client for this store (what the pipeline itself builds, for the tests' checks)."""
        from pipeline.storage.s3 import make_client

        return make_client({"endpoint_url": self.endpoint, "aws_access_key_id": access_key,
                            "aws_secret_access_key": secret_key, "region_name": REGION})

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

    def create_bucket(self, name: str) -> None:
        """Create a bucket (a Swift container) through Swift's own API, unless it exists."""
        request = urllib.request.Request(f"{self.endpoint}/auth/v1.0",
                                         headers={"X-Auth-User": ACCESS_KEY, "X-Auth-Key": SECRET_KEY})
        with urllib.request.urlopen(request, timeout=10) as reply:
            storage, token = reply.headers["X-Storage-Url"], reply.headers["X-Auth-Token"]
        storage = f"{self.endpoint}/{storage.split('/', 3)[3]}"  # the URL as reached from here
        urllib.request.urlopen(urllib.request.Request(f"{storage}/{name}", method="PUT",
                                                      headers={"X-Auth-Token": token}), timeout=10).close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def main() -> None:
    """Serve until SIGTERM or SIGINT, with ``--bucket`` created."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1", help="interface of the S3 endpoint (0.0.0.0: all)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--directory", type=Path, default=Path("/srv/swift"))
    parser.add_argument("--bucket", action="append", default=[], help="bucket to create (repeatable)")
    args = parser.parse_args()
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    with TemporarySwift(args.directory, address=args.address, port=args.port) as swift:
        for bucket in args.bucket:
            swift.create_bucket(bucket)
        print(f"S3 endpoint on {args.address}:{args.port} (access key {ACCESS_KEY}, secret {SECRET_KEY}); "
              f"buckets: {', '.join(args.bucket) or 'none'}; data in {args.directory}", flush=True)
        while not stopping and all(process.poll() is None for process in swift.processes):
            time.sleep(1)


if __name__ == "__main__":
    main()
