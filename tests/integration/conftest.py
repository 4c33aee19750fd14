"""Fixtures that run a real berthd on a free loopback port for the tests.

Every test talks to berthd the way a user does: boto3, the AWS CLI, skopeo
and raw HTTP, signed with the keys berthd wrote into its data dir.
"""
import configparser
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import boto3
import botocore.config
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BERTH_BUILD_DIR", os.path.join(ROOT, "build"))
BERTHD = os.environ.get("BERTHD", os.path.join(BUILD, "berthd"))
REGION = "us-east-1"
ACCOUNT = "000000000000"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_networks = itertools.count()


class Berthd:
    """One berthd process with its own data dir; restartable.

    Without `agent` it runs no node agent (tests of the API alone, or with the
    fake agent). With `agent` it runs the real one on a bridge, subnet and
    cgroup of its own, which stop() removes again.
    """

    def __init__(self, data_dir, extra_args=(), agent=False):
        self.data_dir = data_dir
        self.port = free_port()
        self.extra_args = list(extra_args)
        self.agent = agent
        self.proc = None
        self.log_path = os.path.join(data_dir, "berthd.log")
        if agent:
            n = (os.getpid() * 7 + next(_networks)) % 250
            self.bridge = f"bt{os.getpid() % 10000}n{n}"[:15]
            self.subnet = f"172.27.{n}.0/24"
            self.gateway = f"172.27.{n}.1"
            self.cgroup_parent = f"berthtest-{os.getpid()}-{n}"
            self.extra_args += ["--bridge", self.bridge, "--subnet", self.subnet,
                                "--cgroup-parent", self.cgroup_parent,
                                "--metadata-port", str(free_port()), "--stop-tasks-on-exit"]
        elif "--no-agent" not in self.extra_args:
            self.extra_args.append("--no-agent")

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        os.makedirs(self.data_dir, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [BERTHD, "serve", "--listen", f"127.0.0.1:{self.port}",
             "--data-dir", self.data_dir, "--region", REGION, "--log-level", "debug",
             *self.extra_args],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"berthd exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/_berth/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("berthd did not become healthy:\n" + self.log_tail())

    def stop(self, sig=signal.SIGTERM, timeout=150):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def remove_network(self):
        """Deletes the bridge this berthd's agent made (after its tasks are gone)."""
        if self.agent:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)

    def kill9(self):
        self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def log_tail(self, n=60):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def credentials(self):
        cp = configparser.ConfigParser()
        cp.read(os.path.join(self.data_dir, "credentials"))
        return cp["default"]["aws_access_key_id"], cp["default"]["aws_secret_access_key"]

    def client(self, service, **kwargs):
        akid, secret = self.credentials()
        cfg = botocore.config.Config(retries={"max_attempts": 1}, read_timeout=120)
        return boto3.session.Session(
            aws_access_key_id=akid, aws_secret_access_key=secret, region_name=REGION
        ).client(service, endpoint_url=self.endpoint, config=cfg, **kwargs)

    def cli_env(self):
        env = dict(os.environ)
        env.update({
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(self.data_dir, "credentials"),
            "AWS_CONFIG_FILE": os.path.join(self.data_dir, "config"),
            "AWS_PAGER": "",
        })
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                  "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION"):
            env.pop(k, None)
        return env

    def aws(self, *args, check=True):
        """Runs Debian's AWS CLI v2 against this berthd; returns the CompletedProcess."""
        return subprocess.run(["/usr/bin/aws", "--endpoint-url", self.endpoint, *args],
                              env=self.cli_env(), capture_output=True, text=True, check=check,
                              timeout=120)


@pytest.fixture(scope="session")
def berthd_factory():
    made = []
    root = tempfile.mkdtemp(prefix="berth-test-")

    def make(name="default", extra_args=(), agent=False):
        b = Berthd(os.path.join(root, name), extra_args, agent)
        made.append(b)
        return b.start()

    yield make
    for b in made:
        b.stop()
        b.remove_network()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def berthd(berthd_factory):
    """A berthd shared by the tests that do not restart it."""
    return berthd_factory("shared")


@pytest.fixture
def ecs(berthd):
    return berthd.client("ecs")
