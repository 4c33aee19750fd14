#!/usr/bin/python3
"""Registry benchmark: berth beside Debian's docker-registry (CNCF distribution).

Pushes and pulls, with skopeo, (a) one image with a single 256 MiB layer and
(b) one image with 200 layers of 64 KiB, against both registries on loopback,
and prints MB/s, time per layer and berth's ratio to distribution. It also
prints the machine's limits measured in the same run (fsync'd disk writes and
`openssl speed -evp sha256`) and berthd's resident memory growth while it
takes a 1 GiB blob.

Every round starts both servers afresh on new ports with empty storage, so
skopeo's blob-info cache cannot turn a push into a cross-repository mount.

    bench/registry_bench.py [--berthd build-rel/berthd] [--rounds 3]
"""
import argparse
import base64
import configparser
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import boto3  # noqa: E402

from images import build_blob_image  # noqa: E402

MiB = 1 << 20
GOALS = {"large push": 1.5, "large pull": 2.0}
SMALL_TIME_GOAL = 0.3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=20, ok=(200, 401)):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status in ok:
                    return
        except urllib.error.HTTPError as e:
            if e.code in ok:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


class Server:
    """A registry under test: started fresh, stopped by PID."""

    def __init__(self, work):
        self.work = work
        self.proc = None
        self.port = free_port()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Distribution(Server):
    name = "distribution"

    def start(self):
        root = os.path.join(self.work, "distribution-data")
        os.makedirs(root, exist_ok=True)
        config = os.path.join(self.work, "distribution.yml")
        with open(config, "w") as f:
            f.write(f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{self.port}
""")
        self.log = open(os.path.join(self.work, "distribution.log"), "ab")
        self.proc = subprocess.Popen(["docker-registry", "serve", config], stdout=self.log,
                                     stderr=self.log, stdin=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{self.port}/v2/")
        return self

    def creds(self, direction):
        return [f"--{direction}-tls-verify=false"]

    def prepare(self, repo):
        pass


class Berth(Server):
    name = "berth"

    def __init__(self, work, berthd):
        super().__init__(work)
        self.berthd = berthd

    def start(self):
        self.data = os.path.join(self.work, "berth-data")
        self.log = open(os.path.join(self.work, "berthd.log"), "ab")
        self.proc = subprocess.Popen(
            [self.berthd, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data,
             "--log-level", os.environ.get("BERTH_BENCH_LOG", "warn"), "--no-agent"],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{self.port}/_berth/health", ok=(200,))
        cp = configparser.ConfigParser()
        cp.read(os.path.join(self.data, "credentials"))
        self.ecr = boto3.client(
            "ecr", endpoint_url=f"http://127.0.0.1:{self.port}", region_name="us-east-1",
            aws_access_key_id=cp["default"]["aws_access_key_id"],
            aws_secret_access_key=cp["default"]["aws_secret_access_key"])
        token = self.ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
        self.password = base64.b64decode(token).decode().split(":", 1)[1]
        return self

    def creds(self, direction):
        return [f"--{direction}-tls-verify=false", f"--{direction}-creds", f"AWS:{self.password}"]

    def prepare(self, repo):
        self.ecr.create_repository(repositoryName=repo)

    def rss_kib(self, field="VmRSS"):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0


def skopeo_copy(args):
    started = time.perf_counter()
    r = subprocess.run(["skopeo", "copy", "--quiet", *args], capture_output=True, text=True,
                       timeout=900)
    elapsed = time.perf_counter() - started
    if r.returncode != 0:
        raise RuntimeError(f"skopeo copy {' '.join(args)} failed: {r.stderr}")
    return elapsed


def run_round(kind, image, total_bytes, work, berthd):
    """One push and one pull of `image` to each registry; returns
    {registry: (push seconds, pull seconds)}."""
    out = {}
    for server in (Distribution(work), Berth(work, berthd)):
        server.start()
        try:
            repo = f"bench/{kind}"
            server.prepare(repo)
            dest = f"docker://127.0.0.1:{server.port}/{repo}:1"
            push = skopeo_copy([*server.creds("dest"), image.reference, dest])
            pull_dir = os.path.join(work, f"pull-{server.name}")
            shutil.rmtree(pull_dir, ignore_errors=True)
            pull = skopeo_copy([*server.creds("src"), dest, f"oci:{pull_dir}:1"])
            shutil.rmtree(pull_dir, ignore_errors=True)
            out[server.name] = (push, pull)
        finally:
            server.stop()
            for d in ("distribution-data", "berth-data"):
                shutil.rmtree(os.path.join(work, d), ignore_errors=True)
    return out


def disk_write_speed(work, size=512 * MiB):
    path = os.path.join(work, "disk-test")
    block = os.urandom(4 * MiB)
    started = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(size // len(block)):
            os.write(fd, block)
        os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - started
    os.unlink(path)
    return size / elapsed / 1e6


def sha256_speed():
    r = subprocess.run(["openssl", "speed", "-evp", "sha256", "-seconds", "2"],
                       capture_output=True, text=True, timeout=120)
    for line in r.stdout.splitlines():
        if line.startswith("sha256") or line.startswith("SHA256"):
            values = re.findall(r"([\d.]+)k", line)
            if values:
                return float(values[-1]) * 1000 / 1e6  # the largest block size, in MB/s
    return float("nan")


def memory_during_big_push(work, berthd, size=1 << 30):
    """Streams a `size` blob into berthd and reports (RSS before, peak RSS) in MiB."""
    server = Berth(work, berthd).start()
    try:
        server.prepare("bench/memory")
        before = server.rss_kib()
        peak = [before]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], server.rss_kib())
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        chunk = hashlib.shake_256(b"memory").digest(4 * MiB)
        digest = hashlib.sha256()
        for _ in range(size // len(chunk)):
            digest.update(chunk)
        auth = base64.b64encode(f"AWS:{server.password}".encode()).decode()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
        conn.putrequest("POST",
                        f"/v2/bench/memory/blobs/uploads/?digest=sha256:{digest.hexdigest()}")
        conn.putheader("Authorization", "Basic " + auth)
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        started = time.perf_counter()
        for _ in range(size // len(chunk)):
            conn.send(chunk)
        resp = conn.getresponse()
        resp.read()
        elapsed = time.perf_counter() - started
        stop.set()
        sampler.join()
        if resp.status != 201:
            raise RuntimeError(f"1 GiB upload answered {resp.status}")
        hwm = server.rss_kib("VmHWM")
        return before / 1024, max(peak[0], hwm) / 1024, size / elapsed / 1e6
    finally:
        server.stop()
        shutil.rmtree(os.path.join(work, "berth-data"), ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--berthd", default=os.path.join(ROOT, "build-rel", "berthd"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default=None, help="scratch directory (default: a temp dir)")
    args = ap.parse_args()
    if not os.path.exists(args.berthd):
        sys.exit(f"no berthd at {args.berthd}; build it with -DCMAKE_BUILD_TYPE=Release")
    for tool in ("skopeo", "docker-registry", "openssl"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (scripts/setup --bench installs it)")

    work = tempfile.mkdtemp(prefix="berth-registry-bench-", dir=args.work)
    try:
        print("machine limits")
        print(f"  fsync'd disk write         {disk_write_speed(work):8.0f} MB/s")
        print(f"  openssl sha256 (16 KiB)    {sha256_speed():8.0f} MB/s")
        print(f"  cores                      {os.cpu_count():8d}")

        images_dir = os.path.join(work, "images")
        large = build_blob_image(os.path.join(images_dir, "large"), "1", [256 * MiB], seed=1)
        small = build_blob_image(os.path.join(images_dir, "small"), "1", [64 << 10] * 200,
                                 seed=2)
        large_bytes = 256 * MiB
        small_layers = 200

        results = {"large": {"distribution": [], "berth": []},
                   "small": {"distribution": [], "berth": []}}
        for i in range(args.rounds):
            for kind, image in (("large", large), ("small", small)):
                for name, times in run_round(kind, image, 0, work, args.berthd).items():
                    results[kind][name].append(times)
            print(f"  round {i + 1}/{args.rounds} done", file=sys.stderr)

        def best(kind, name, which):
            return min(t[which] for t in results[kind][name])

        def med(kind, name, which):
            return statistics.median(t[which] for t in results[kind][name])

        print(f"\nskopeo copy, best (median) of {args.rounds} rounds, fresh servers each round")
        print(f"{'':24}{'distribution':>22}{'berth':>22}{'berth/dist':>12}  goal")
        verdicts = []
        for which, label in ((0, "push"), (1, "pull")):
            d, b = best("large", "distribution", which), best("large", "berth", which)
            dm, bm = med("large", "distribution", which), med("large", "berth", which)
            dr, br = large_bytes / d / 1e6, large_bytes / b / 1e6
            ratio = br / dr
            goal = GOALS[f"large {label}"]
            ok = ratio >= goal
            verdicts.append(ok)
            print(f"{'256 MiB layer ' + label:24}{dr:9.0f} MB/s ({large_bytes / dm / 1e6:4.0f}) "
                  f"{br:9.0f} MB/s ({large_bytes / bm / 1e6:4.0f}) {ratio:9.2f}x  "
                  f">= {goal}x {'met' if ok else 'NOT met'}")
        for which, label in ((0, "push"), (1, "pull")):
            d, b = best("small", "distribution", which), best("small", "berth", which)
            dm, bm = med("small", "distribution", which), med("small", "berth", which)
            ratio = b / d
            ok = ratio <= SMALL_TIME_GOAL
            verdicts.append(ok)
            print(f"{'200 x 64 KiB ' + label:24}{d / small_layers * 1000:9.2f} ms/layer "
                  f"({dm / small_layers * 1000:.2f})"
                  f"{b / small_layers * 1000:6.2f} ms/layer ({bm / small_layers * 1000:.2f})"
                  f"{ratio:7.2f}x  <= {SMALL_TIME_GOAL}x {'met' if ok else 'NOT met'}")

        before, peak, rate = memory_during_big_push(work, args.berthd)
        growth = peak - before
        mem_ok = growth < 64
        verdicts.append(mem_ok)
        print(f"\nberthd RSS while taking a 1 GiB blob: {before:.1f} MiB before, {peak:.1f} MiB "
              f"peak, growth {growth:.1f} MiB (goal < 64 MiB: {'met' if mem_ok else 'NOT met'}); "
              f"raw upload {rate:.0f} MB/s")
        print(json.dumps({"results": results}), file=sys.stderr)
        return 0 if all(verdicts) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
