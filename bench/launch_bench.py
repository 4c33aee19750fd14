#!/usr/bin/python3
"""launch_bench: how fast berth's node agent starts tasks, and how many it holds.

Run as root from the source tree after building (see bench/README.md):

    /usr/bin/python3 bench/launch_bench.py [--tasks 50] [--density 200]

In one run it measures, with the same busybox image and the same command:

  floor   what any runtime must do here, with no berth: create a network namespace,
          CNI ADD (loopback, then bridge + host-local on a private bridge), `runc run -d`
          of the image's unpacked rootfs; timed until runc returns; then torn down.
  berth   RunTask to RUNNING (as DescribeTasks shows it) with the image already cached,
          one-container tasks one after the other, each stopped once RUNNING;
  podman  `podman run --rm` of the same image loaded from its OCI layout, timed from start
          to exit (skipped, with the reason, where podman does not work);
  density N idle tasks (cpu 256 / memory 512) running at once: how long until all are
          RUNNING, berthd's resident memory growth per task, then stop all and check that
          nothing is left behind.

Everything it creates (a berthd on a loopback port with its own bridge, subnet and cgroup
parent, the floor's bridge, namespaces and containers, podman's private storage and network)
is removed at the end, also when interrupted. It stops only processes it started, by pid.
"""
import argparse
import base64
import configparser
import ctypes
import ipaddress
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import boto3  # noqa: E402
import botocore.config  # noqa: E402

from images import build_image  # noqa: E402

REGION = "us-east-1"
CNI_DIR = "/usr/lib/cni"
CGROUP_ROOT = "/sys/fs/cgroup"
APPLETS = ("sh", "sleep", "true", "echo", "cat")
# Exits at once on SIGTERM (a shell as PID 1 gets no default signal handling).
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
EXEC_ROLE = "arn:aws:iam::000000000000:role/ecsTaskExecutionRole"
GOAL_FLOOR_RATIO = 1.25
GOAL_P99_MS = 300
GOAL_PODMAN_RATIO = 0.35
GOAL_RSS_PER_TASK_KIB = 1024


class Interrupted(Exception):
    pass


def on_signal(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def machine_load():
    """The load average and the share of the last minute some task waited for a CPU."""
    text = f"load {os.getloadavg()[0]:.1f}"
    try:
        with open("/proc/pressure/cpu") as f:
            some = f.readline().split()
        text += f", cpu pressure {some[2].split('=')[1]}% (avg60)"
    except (OSError, IndexError):
        pass
    return text


def ms(seconds):
    return seconds * 1000.0


def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    i = int(round(p / 100.0 * (len(v) - 1)))
    return v[min(i, len(v) - 1)]


def summary(values):
    """p50, p99, mean, min, max in ms of a list of seconds."""
    if not values:
        return None
    return {"p50": ms(percentile(values, 50)), "p99": ms(percentile(values, 99)),
            "mean": ms(statistics.mean(values)), "min": ms(min(values)), "max": ms(max(values)),
            "n": len(values)}


def print_row(label, s):
    if s is None:
        print(f"  {label:<44} (no samples)")
        return
    print(f"  {label:<44} p50 {s['p50']:7.1f} ms  p99 {s['p99']:7.1f} ms  "
          f"mean {s['mean']:7.1f}  min {s['min']:6.1f}  max {s['max']:7.1f}  (n={s['n']})")


def run(argv, check=True, timeout=120, **kw):
    return subprocess.run(argv, check=check, timeout=timeout, capture_output=True, text=True,
                          **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def used_networks():
    """Every IPv4 network with an address or a route on this host."""
    nets = []
    for cmd in (["ip", "-o", "-4", "addr", "show"], ["ip", "-o", "-4", "route", "show"]):
        for line in run(cmd, check=False).stdout.splitlines():
            for word in line.split():
                try:
                    if "/" in word or word[0].isdigit():
                        nets.append(ipaddress.ip_network(word, strict=False))
                except ValueError:
                    pass
    return nets


def pick_subnet(candidates):
    used = used_networks()
    for c in candidates:
        net = ipaddress.ip_network(c)
        if not any(net.overlaps(u) for u in used):
            return c
    raise RuntimeError("no free private subnet among " + ", ".join(candidates))


def cgroup_controllers():
    """Every mounted cgroup hierarchy (v1 controllers, named and unified ones), or [root] on a
    pure cgroup v2 host. runc makes a container's cgroup in each of them."""
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
        return [CGROUP_ROOT]
    out, seen = [], set()
    for name in sorted(os.listdir(CGROUP_ROOT)):
        path = os.path.join(CGROUP_ROOT, name)
        real = os.path.realpath(path)
        if os.path.isdir(path) and real not in seen and \
                os.path.exists(os.path.join(path, "cgroup.procs")):
            seen.add(real)
            out.append(path)
    return out


def remove_cgroup_tree(path):
    """Removes a cgroup directory and its (empty) children, deepest first."""
    if not os.path.isdir(path):
        return
    for dirpath, dirnames, _ in sorted(os.walk(path), key=lambda e: -e[0].count("/")):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


def cgroup_children(parent):
    out = []
    for ctrl in cgroup_controllers():
        p = os.path.join(ctrl, parent)
        if os.path.isdir(p):
            out += [os.path.join(p, e) for e in os.listdir(p)
                    if os.path.isdir(os.path.join(p, e))]
    return out


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def shim_pss_kib(data_dir):
    """Proportional resident memory (KiB) and count of the berth-shim processes waiting on
    this run's containers (found by their exit-file paths under `data_dir`)."""
    total, count = 0, 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if not argv or not argv[0].endswith(b"berth-shim") or \
                    not any(data_dir.encode() in a for a in argv):
                continue
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        count += 1
        except OSError:
            continue
    return total, count


def cpu_seconds(pid):
    """User plus system CPU time of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_count(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


class Cleanup:
    """Undo actions, run last-in first-out."""

    def __init__(self):
        self.actions = []

    def push(self, what, fn):
        self.actions.append((what, fn))

    def run(self):
        while self.actions:
            what, fn = self.actions.pop()
            try:
                fn()
            except Exception as e:  # keep cleaning up the rest
                print(f"  cleanup: {what}: {e}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# The floor: netns + CNI ADD + runc run -d, no berth.

class Floor:
    def __init__(self, workdir, layer_blob, subnet, bridge, cgroup_parent, cleanup):
        self.dir = os.path.join(workdir, "floor")
        self.rootfs = os.path.join(self.dir, "rootfs")
        self.bundle = os.path.join(self.dir, "bundle")
        self.runc_root = os.path.join(self.dir, "runc")
        self.ipam_dir = os.path.join(self.dir, "ipam")
        self.subnet = subnet
        self.bridge = bridge
        self.cgroup_parent = cgroup_parent
        self.tag = f"bbf{os.getpid()}"
        os.makedirs(self.rootfs)
        os.makedirs(self.bundle)
        with tarfile.open(layer_blob, "r:gz") as t:
            t.extractall(self.rootfs)
        run(["runc", "spec", "--bundle", self.bundle])
        with open(os.path.join(self.bundle, "config.json")) as f:
            self.spec = json.load(f)
        self.spec["process"]["terminal"] = False
        self.spec["process"]["args"] = COMMAND
        self.spec["root"] = {"path": self.rootfs, "readonly": False}
        cleanup.push("floor bridge", lambda: run(["ip", "link", "del", self.bridge], check=False))
        cleanup.push("floor cgroups",
                     lambda: [remove_cgroup_tree(os.path.join(c, self.cgroup_parent))
                              for c in cgroup_controllers()])

    def cni(self, plugin, command, cid, netns, ifname, conf):
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns,
               "CNI_IFNAME": ifname, "CNI_PATH": CNI_DIR,
               "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        r = subprocess.run([os.path.join(CNI_DIR, plugin)], input=json.dumps(conf), env=env,
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"CNI {plugin} {command}: {r.stdout} {r.stderr}")
        return r.stdout

    def confs(self):
        lo = {"cniVersion": "1.0.0", "name": "benchfloor-lo", "type": "loopback"}
        br = {"cniVersion": "1.0.0", "name": "benchfloor", "type": "bridge",
              "bridge": self.bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
              "ipam": {"type": "host-local", "ranges": [[{"subnet": self.subnet}]],
                       "routes": [{"dst": "0.0.0.0/0"}], "dataDir": self.ipam_dir}}
        return lo, br

    def one(self, i):
        """Starts one container the bare way; returns (start seconds, teardown seconds)."""
        cid = f"{self.tag}-{i}"
        netns = f"/run/netns/{cid}"
        lo, br = self.confs()
        self.spec["linux"]["namespaces"] = [
            n for n in self.spec["linux"]["namespaces"] if n["type"] != "network"
        ] + [{"type": "network", "path": netns}]
        self.spec["linux"]["cgroupsPath"] = f"/{self.cgroup_parent}/{cid}"
        self.spec["hostname"] = cid
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump(self.spec, f)
        log = os.path.join(self.dir, "container.log")
        t0 = time.monotonic()
        started = False
        try:
            run(["ip", "netns", "add", cid])
            self.cni("loopback", "ADD", cid, netns, "lo", lo)
            self.cni("bridge", "ADD", cid, netns, "eth0", br)
            with open(log, "ab") as out:
                r = subprocess.run(["runc", "--root", self.runc_root, "run", "-d", "--bundle",
                                    self.bundle, cid], stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=out, timeout=60)
            if r.returncode != 0:
                raise RuntimeError(f"runc run failed; see {log}")
            started = True
            t1 = time.monotonic()
        finally:
            t2 = time.monotonic()
            state = run(["runc", "--root", self.runc_root, "state", cid], check=False)
            pid = json.loads(state.stdout).get("pid", 0) if state.returncode == 0 else 0
            run(["runc", "--root", self.runc_root, "delete", "--force", cid], check=False)
            if pid:
                try:  # the container's init is our child's orphan: reap it if it is ours
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
            self.cni("bridge", "DEL", cid, netns, "eth0", br)
            self.cni("loopback", "DEL", cid, netns, "lo", lo)
            run(["ip", "netns", "del", cid], check=False)
            t3 = time.monotonic()
        return (t1 - t0 if started else None), t3 - t2


# ---------------------------------------------------------------------------------------------
# berth: a berthd with its real agent.

class Berthd:
    def __init__(self, binary, data_dir, bridge, subnet, cgroup_parent, factor):
        self.binary = binary
        self.data_dir = data_dir
        self.bridge = bridge
        self.subnet = subnet
        self.cgroup_parent = cgroup_parent
        self.factor = factor
        self.port = free_port()
        self.proc = None

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        os.makedirs(self.data_dir, exist_ok=True)
        log = open(os.path.join(self.data_dir, "berthd.log"), "ab")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir",
             self.data_dir, "--region", REGION, "--log-level", "warn", "--bridge", self.bridge,
             "--subnet", self.subnet, "--cgroup-parent", self.cgroup_parent,
             "--metadata-port", str(free_port()), "--allocation-factor", str(self.factor)],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"berthd exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.endpoint + "/_berth/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("berthd did not become healthy in 30 s")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=150)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def client(self, service):
        cp = configparser.ConfigParser()
        cp.read(os.path.join(self.data_dir, "credentials"))
        cfg = botocore.config.Config(retries={"max_attempts": 1}, read_timeout=120)
        return boto3.session.Session(
            aws_access_key_id=cp["default"]["aws_access_key_id"],
            aws_secret_access_key=cp["default"]["aws_secret_access_key"],
            region_name=REGION).client(service, endpoint_url=self.endpoint, config=cfg)


def setup_berth(b, img):
    ecr = b.client("ecr")
    ecr.create_repository(repositoryName="bench")
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    creds = base64.b64decode(token).decode()
    run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", creds,
         img.reference, f"docker://127.0.0.1:{b.port}/bench:v1"])
    ecs = b.client("ecs")
    ecs.create_cluster(clusterName="bench")
    ecs.register_task_definition(
        family="idle", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256",
        memory="512", executionRoleArn=EXEC_ROLE,
        containerDefinitions=[{"name": "app", "image": "bench:v1", "command": COMMAND,
                               "stopTimeout": 2}])
    return ecs


NET = {"awsvpcConfiguration": {"subnets": ["subnet-bench"]}}


def wait_all(ecs, arns, status, timeout, poll=0.01):
    """Polls DescribeTasks until every task has `status`; returns {arn: (seconds, task)}."""
    seen = {}
    start = time.monotonic()
    pending = list(arns)
    while pending and time.monotonic() - start < timeout:
        for i in range(0, len(pending), 100):
            for t in ecs.describe_tasks(cluster="bench", tasks=pending[i:i + 100])["tasks"]:
                if t["lastStatus"] == status or t["lastStatus"] == "STOPPED":
                    seen.setdefault(t["taskArn"], (time.monotonic(), t))
        pending = [a for a in arns if a not in seen]
        if pending:
            time.sleep(poll)
    return seen


def berth_launches(ecs, n, deadline):
    """Sequential RunTask -> RUNNING, each then stopped. Returns lists of seconds."""
    client_side, server_side, stops, failures = [], [], [], []
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        t0 = time.monotonic()
        out = ecs.run_task(cluster="bench", taskDefinition="idle", launchType="FARGATE",
                           networkConfiguration=NET)
        if out["failures"]:
            failures.append(str(out["failures"]))
            continue
        arn = out["tasks"][0]["taskArn"]
        got = wait_all(ecs, [arn], "RUNNING", timeout=60).get(arn)
        if got is None or got[1]["lastStatus"] != "RUNNING":
            failures.append(f"{arn}: {got[1].get('stoppedReason') if got else 'timed out'}")
            continue
        t1, task = got
        client_side.append(t1 - t0)
        if task.get("startedAt") and task.get("createdAt"):
            server_side.append((task["startedAt"] - task["createdAt"]).total_seconds())
        t2 = time.monotonic()
        ecs.stop_task(cluster="bench", task=arn, reason="bench")
        done = wait_all(ecs, [arn], "STOPPED", timeout=90, poll=0.02).get(arn)
        if done is not None:
            stops.append(done[0] - t2)
    return client_side, server_side, stops, failures


# ---------------------------------------------------------------------------------------------
# podman, on private storage and a private bridge network.

class Podman:
    def __init__(self, workdir, subnet, bridge, cgroup_parent, cleanup):
        self.dir = os.path.join(workdir, "podman")
        self.netdir = os.path.join(self.dir, "net")
        self.bridge = bridge
        self.cgroup_parent = cgroup_parent
        os.makedirs(self.netdir)
        # Podman's default network ("podman"), on a bridge and subnet of this run's own; the
        # plugins are the ones berth and the floor use.
        with open(os.path.join(self.netdir, "87-podman.conflist"), "w") as f:
            json.dump({"cniVersion": "0.4.0", "name": "podman", "plugins": [
                {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False,
                 "hairpinMode": True,
                 "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}],
                          "ranges": [[{"subnet": subnet}]],
                          "dataDir": os.path.join(self.dir, "ipam")}}]}, f)
        self.globals = ["podman", "--root", os.path.join(self.dir, "root"), "--runroot",
                        os.path.join(self.dir, "runroot"), "--tmpdir",
                        os.path.join(self.dir, "tmp"), "--network-config-dir", self.netdir,
                        "--cgroup-manager=cgroupfs", "--events-backend=file",
                        "--storage-driver", "overlay"]
        self.image = None
        cleanup.push("podman bridge", lambda: run(["ip", "link", "del", bridge], check=False))
        cleanup.push("podman cgroups",
                     lambda: [remove_cgroup_tree(os.path.join(c, cgroup_parent))
                              for c in cgroup_controllers()])
        cleanup.push("podman storage", self.reset)

    def reset(self):
        if os.path.isdir(os.path.join(self.dir, "root")):
            run(self.globals + ["rm", "--all", "--force"], check=False, timeout=120)
            run(self.globals + ["system", "reset", "--force"], check=False, timeout=120)
        # Whatever podman left mounted under its private root goes too.
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f]
        for m in sorted((m for m in mounts if m.startswith(self.dir + "/")), reverse=True):
            run(["umount", "-l", m], check=False)

    def load(self, img):
        r = run(self.globals + ["pull", "--quiet", img.reference], timeout=300)
        self.image = r.stdout.strip().splitlines()[-1]

    def one(self):
        t0 = time.monotonic()
        r = run(self.globals + ["run", "--runtime", "runc", "--ulimit", "nofile=1024:1024",
                                "--ulimit", "nproc=4096:4096", "--rm", "--cgroup-parent",
                                "/" + self.cgroup_parent, self.image, "true"],
                check=False, timeout=120)
        t1 = time.monotonic()
        if r.returncode != 0:
            raise RuntimeError((r.stderr or r.stdout).strip()[-500:])
        return t1 - t0


# ---------------------------------------------------------------------------------------------

def density(b, ecs, n, deadline_s):
    """n idle tasks at once; returns a dict of figures."""
    fig = {"n": n}
    pid = b.proc.pid
    rss0 = vm_rss_kib(pid)
    threads0 = thread_count(pid)
    arns = []
    t0 = time.monotonic()
    failures = []
    while len(arns) < n and time.monotonic() - t0 < deadline_s:
        out = ecs.run_task(cluster="bench", taskDefinition="idle", launchType="FARGATE",
                           networkConfiguration=NET, count=min(10, n - len(arns)))
        arns += [t["taskArn"] for t in out["tasks"]]
        if out["failures"]:
            failures += out["failures"]
            break
    fig["placed"] = len(arns)
    fig["place_failures"] = failures[:3]
    got = wait_all(ecs, arns, "RUNNING", timeout=max(10, deadline_s - (time.monotonic() - t0)),
                   poll=0.2)
    running = [a for a, (_, t) in got.items() if t["lastStatus"] == "RUNNING"]
    fig["running"] = len(running)
    fig["all_running_s"] = (max(s for s, _ in got.values()) - t0) if got else float("nan")
    fig["not_running"] = [t.get("stoppedReason", "") for _, t in got.values()
                          if t["lastStatus"] != "RUNNING"][:3]
    time.sleep(2)  # let allocations settle
    cpu0, w0 = cpu_seconds(pid), time.monotonic()
    time.sleep(5)
    fig["idle_cpu_pct"] = 100.0 * (cpu_seconds(pid) - cpu0) / (time.monotonic() - w0)
    fig["rss_before_kib"] = rss0
    fig["rss_after_kib"] = vm_rss_kib(pid)
    fig["shim_pss_kib"], fig["shims"] = shim_pss_kib(b.data_dir)
    fig["threads_before"] = threads0
    fig["threads_after"] = thread_count(pid)
    mem = 0
    for ctrl in cgroup_controllers():
        for name in ("memory.usage_in_bytes", "memory.current"):
            p = os.path.join(ctrl, b.cgroup_parent, name)
            if os.path.exists(p):
                mem = int(open(p).read())
    fig["containers_memory_bytes"] = mem
    t1 = time.monotonic()
    for a in arns:
        ecs.stop_task(cluster="bench", task=a, reason="bench density done")
    stopped = wait_all(ecs, arns, "STOPPED", timeout=120, poll=0.5)
    fig["stopped"] = sum(1 for _, t in stopped.values() if t["lastStatus"] == "STOPPED")
    fig["stop_all_s"] = time.monotonic() - t1
    fig["rss_end_kib"] = vm_rss_kib(pid)
    fig["leftovers"] = leftovers(b, [a.rsplit("/", 1)[1] for a in arns])
    return fig


def leftovers(b, task_ids):
    agent = os.path.join(b.data_dir, "agent")
    netns = [n for n in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else [])
             if n.startswith("berth-") and n[len("berth-"):] in set(task_ids)]
    ports = run(["ip", "-o", "link", "show", "master", b.bridge], check=False).stdout.split("\n")
    runc = run(["runc", "--root", os.path.join(agent, "runc"), "list", "-q"], check=False)
    with open("/proc/self/mountinfo") as f:
        mounts = [line for line in f if agent + "/" in line]
    task_dirs = os.listdir(os.path.join(agent, "tasks")) \
        if os.path.isdir(os.path.join(agent, "tasks")) else []
    return {"netns": len(netns), "cgroups": len(cgroup_children(b.cgroup_parent)),
            "bridge ports": len([p for p in ports if p.strip()]),
            "runc containers": len(runc.stdout.split()), "mounts": len(mounts),
            "task dirs": len(task_dirs)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=50, help="launches per contender")
    ap.add_argument("--density", type=int, default=200, help="idle tasks at once (0: skip)")
    ap.add_argument("--berthd", default=os.environ.get(
        "BERTHD", os.path.join(os.environ.get("BERTH_BUILD_DIR", os.path.join(ROOT, "build")),
                               "berthd")))
    ap.add_argument("--no-podman", action="store_true")
    ap.add_argument("--phase-limit", type=float, default=150,
                    help="seconds after which a phase stops launching")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("launch_bench: needs root (namespaces, cgroups, bridges)")
    if not os.access(args.berthd, os.X_OK):
        sys.exit(f"launch_bench: no berthd at {args.berthd} (build it, or pass --berthd)")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # Orphaned container inits of the floor come back to us to be reaped.
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER

    cleanup = Cleanup()
    workdir = tempfile.mkdtemp(prefix="launch-bench-", dir="/var/tmp")
    cleanup.push("work dir", lambda: shutil.rmtree(workdir, ignore_errors=True))
    tag = os.getpid() % 10000
    k = os.getpid() % 60
    berth_subnet = pick_subnet([f"172.29.{(k + j) % 64 * 4}.0/22" for j in range(64)])
    floor_subnet = pick_subnet([f"172.28.{(k + j) % 128}.0/24" for j in range(128)])
    podman_subnet = pick_subnet([f"172.28.{128 + (k + j) % 128}.0/24" for j in range(128)])
    rc = 0
    try:
        img = build_image(os.path.join(workdir, "layout"), tag="v1", cmd=["sh"], applets=APPLETS)
        layer_blob = os.path.join(workdir, "layout", "blobs", "sha256",
                                  img.layer_digests[0].split(":", 1)[1])
        print(f"launch_bench: {args.tasks} launches each, busybox image {img.manifest_digest[:19]}"
              f", command {' '.join(COMMAND[:2])} ...; {os.cpu_count()} cores, "
              f"{machine_load()}")

        # --- berth
        b = Berthd(args.berthd, os.path.join(workdir, "berthd"), f"bbb{tag}", berth_subnet,
                   f"berthbench-{os.getpid()}", factor=40)
        cleanup.push("berthd cgroups",
                     lambda: [remove_cgroup_tree(os.path.join(c, b.cgroup_parent))
                              for c in cgroup_controllers()])
        cleanup.push("berthd bridge", lambda: run(["ip", "link", "del", b.bridge], check=False))
        cleanup.push("berthd", b.stop)
        b.start()
        ecs = setup_berth(b, img)
        # Warm-up: the first task pulls and unpacks the image; not counted.
        berth_launches(ecs, 2, time.monotonic() + 120)

        # --- the contenders, warmed up, then measured in turns so that all three see the same
        # machine (other work on it comes and goes).
        floor = Floor(workdir, layer_blob, floor_subnet, f"bbf{tag}",
                      f"berthbench-floor-{os.getpid()}", cleanup)
        floor.one(0)  # warm-up (bridge creation)
        podman, podman_skip = None, None
        if args.no_podman:
            podman_skip = "--no-podman given"
        elif shutil.which("podman") is None:
            podman_skip = "podman is not installed"
        else:
            try:
                podman = Podman(workdir, podman_subnet, f"bbp{tag}",
                                f"berthbench-podman-{os.getpid()}", cleanup)
                podman.load(img)
                podman.one()  # warm-up
            except (RuntimeError, subprocess.SubprocessError) as e:
                podman, podman_skip = None, f"podman does not work here: {e}"

        floor_start, floor_down, podman_times = [], [], []
        b_client, b_server, b_stop, b_fail = [], [], [], []
        deadline = time.monotonic() + args.phase_limit
        for i in range(1, args.tasks + 1):
            if time.monotonic() > deadline:
                print(f"  (time limit: stopped after {i - 1} rounds)")
                break
            s, d = floor.one(i)
            if s is not None:
                floor_start.append(s)
            floor_down.append(d)
            c, sv, st, f = berth_launches(ecs, 1, deadline + 60)
            b_client += c
            b_server += sv
            b_stop += st
            b_fail += f
            if podman is not None:
                try:
                    podman_times.append(podman.one())
                except (RuntimeError, subprocess.SubprocessError) as e:
                    podman, podman_skip = None, f"podman failed: {e}"
                    podman_times = []

        fs, bs, ss, ps = (summary(floor_start), summary(b_client), summary(b_server),
                          summary(podman_times))
        print("\nlaunch latency (image cached, sequential, contenders in turns):")
        print_row("floor: netns + CNI ADD + runc run -d", fs)
        print_row("berth: RunTask -> RUNNING (client, polling)", bs)
        print_row("berth: startedAt - createdAt (server clock)", ss)
        if podman_skip:
            print(f"  podman: SKIPPED ({podman_skip})")
        else:
            print_row("podman run --rm ... true (start to exit)", ps)
            print("    (podman's network \"podman\" is redefined on a private bridge with bridge +\n"
                  "     host-local only, as berth's; its storage is private to this run)")
        print_row("floor teardown (runc delete, CNI DEL, netns)", summary(floor_down))
        print_row("berth: StopTask -> STOPPED", summary(b_stop))
        if b_fail:
            rc = 1
            print(f"  berth failures: {len(b_fail)}: {b_fail[:3]}")
        if bs and fs:
            r1 = bs["p50"] / fs["p50"]
            print(f"\n  berth p50 / floor p50   = {r1:5.2f}   (goal <= {GOAL_FLOOR_RATIO})"
                  f"  {'met' if r1 <= GOAL_FLOOR_RATIO else 'NOT met'}")
        if bs:
            print(f"  berth p99               = {bs['p99']:5.0f} ms (goal < {GOAL_P99_MS} ms)"
                  f"  {'met' if bs['p99'] < GOAL_P99_MS else 'NOT met'}")
        if bs and ps:
            r2 = bs["p50"] / ps["p50"]
            print(f"  berth p50 / podman p50  = {r2:5.2f}   (goal <= {GOAL_PODMAN_RATIO})"
                  f"  {'met' if r2 <= GOAL_PODMAN_RATIO else 'NOT met'}")

        # --- density
        if args.density > 0:
            print(f"\ndensity: {args.density} idle one-container tasks (cpu 256 / memory 512, "
                  f"allocation factor {b.factor}):")
            fig = density(b, ecs, args.density, deadline_s=max(args.phase_limit, 180))
            print(f"  placed {fig['placed']}, RUNNING {fig['running']}, all RUNNING "
                  f"{fig['all_running_s']:.1f} s after the first RunTask")
            if fig["place_failures"] or fig["not_running"]:
                rc = 1
                print(f"  failures: {fig['place_failures']} {fig['not_running']}")
            grow = fig["rss_after_kib"] - fig["rss_before_kib"]
            per = grow / max(1, fig["running"])
            print(f"  berthd VmRSS {fig['rss_before_kib'] / 1024:.1f} MiB -> "
                  f"{fig['rss_after_kib'] / 1024:.1f} MiB: {per:.0f} KiB per task "
                  f"(goal < {GOAL_RSS_PER_TASK_KIB} KiB) "
                  f"{'met' if per < GOAL_RSS_PER_TASK_KIB else 'NOT met'}")
            shim_per = fig["shim_pss_kib"] / max(1, fig["running"])
            total_per = per + shim_per
            print(f"  plus {fig['shims']} berth-shim waiters: {fig['shim_pss_kib'] / 1024:.1f} MiB "
                  f"PSS, {shim_per:.0f} KiB per task; the agent's memory per task in all "
                  f"{total_per:.0f} KiB (goal < {GOAL_RSS_PER_TASK_KIB} KiB) "
                  f"{'met' if total_per < GOAL_RSS_PER_TASK_KIB else 'NOT met'}")
            print(f"  berthd CPU with {fig['running']} idle tasks: {fig['idle_cpu_pct']:.1f}% "
                  f"of one core (5 s window)")
            print(f"  berthd threads {fig['threads_before']} -> {fig['threads_after']}; "
                  f"the containers' own memory (task cgroups): "
                  f"{fig['containers_memory_bytes'] / 2**20:.0f} MiB")
            print(f"  stopped {fig['stopped']} in {fig['stop_all_s']:.1f} s; berthd VmRSS after: "
                  f"{fig['rss_end_kib'] / 1024:.1f} MiB")
            left = fig["leftovers"]
            clean = all(v == 0 for v in left.values())
            rc |= 0 if clean else 1
            print("  cleanup " + ("verified: " if clean else "INCOMPLETE: ") +
                  ", ".join(f"{k} {v}" for k, v in left.items()))
        print(f"\nat the end: {machine_load()}")
    except Interrupted as e:
        print(f"\nlaunch_bench: interrupted by {e}; cleaning up", file=sys.stderr)
        rc = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cleanup.run()
    return rc


if __name__ == "__main__":
    sys.exit(main())
