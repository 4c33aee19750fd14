"""FakeAgent: a test double of berth's node agent. It runs no containers.

It speaks the agent protocol exactly as a real agent does (register the node,
long-poll /_berth/agent/desired, POST task reports with sequence numbers), but
it only plays each task through the ECS lifecycle on timers, so the control
plane's task API, scheduler and lifecycle can be tested without runc, images
or network namespaces.

What a task does is read from its containers (RunTask command overrides win
over the task definition):
  command ["true"] / ["false"]            exits at once with 0 / 1
  command ["sleep", "N"]                  exits 0 after N seconds
  command ["sh", "-c", "sleep N; exit M"] exits M after N seconds
  anything else                           runs until stopped
  dockerLabels:
    "berth.fake-agent/fail-start": text   the task fails to start
                                          (stopCode TaskFailedToStart, stoppedReason text)
    "berth.fake-agent/exit-after": "N"    the container exits after N seconds ...
    "berth.fake-agent/exit-code": "M"     ... with code M (default 0)
    "berth.fake-agent/health": "HEALTHY" | "UNHEALTHY"
                                          the health status reported once running,
                                          for containers with a healthCheck
    "berth.fake-agent/ignore-sigterm": "true"
                                          stopping it ends with exit code 137, not 143
An essential container exiting stops the task (EssentialContainerExited);
a non-essential one exiting does not.

Test controls: lose() makes the node go silent (node lost); fail_next_start(text)
makes the next task fail to start; step seconds set the pace of transitions.
"""
import json
import os
import shlex
import threading
import time
import urllib.error
import urllib.request

LABEL = "berth.fake-agent/"
LIFECYCLE = ["PROVISIONING", "PENDING", "ACTIVATING", "RUNNING", "DEACTIVATING", "STOPPING",
             "DEPROVISIONING", "STOPPED"]


class AgentError(Exception):
    def __init__(self, status, body):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def parse_command(command):
    """(exit_after_seconds or None, exit_code) for the commands the fake understands."""
    if not command:
        return None, 0
    if command == ["true"]:
        return 0.0, 0
    if command == ["false"]:
        return 0.0, 1
    if len(command) == 2 and command[0] == "sleep":
        try:
            return float(command[1]), 0
        except ValueError:
            return None, 0
    if len(command) == 3 and command[0] in ("sh", "/bin/sh") and command[1] == "-c":
        delay, code = 0.0, None
        for part in command[2].split(";"):
            words = shlex.split(part.strip()) if part.strip() else []
            if len(words) == 2 and words[0] == "sleep":
                delay += float(words[1])
            elif len(words) in (1, 2) and words[0] == "exit":
                code = int(words[1]) if len(words) == 2 else 0
                break
            elif words and words[0] not in ("echo", "true", ":"):
                return None, 0
        return (delay, code) if code is not None else (delay, 0)
    return None, 0


class FakeTask:
    def __init__(self, desired, now):
        self.id = desired["taskId"]
        self.cluster = desired["cluster"]
        self.seq = desired.get("seq", 0)
        self.status = "PROVISIONING"
        self.created = now
        self.started = None
        self.stop_requested = False
        self.stop_code = None
        self.stop_reason = None
        self.stopping_since = None
        self.fail_start = None
        self.ip = None
        self.done = False
        self.unsent = None  # extras of a report the control plane did not get
        td = desired.get("taskDefinition", {})
        overrides = {o.get("name"): o for o in
                     desired.get("overrides", {}).get("containerOverrides", []) or []}
        self.containers = []
        for d in td.get("containerDefinitions", []):
            labels = d.get("dockerLabels", {}) or {}
            command = overrides.get(d["name"], {}).get("command") or d.get("command")
            exit_after, exit_code = parse_command(command)
            if LABEL + "exit-after" in labels:
                exit_after = float(labels[LABEL + "exit-after"])
                exit_code = int(labels.get(LABEL + "exit-code", "0"))
            if LABEL + "fail-start" in labels:
                self.fail_start = labels[LABEL + "fail-start"]
            self.containers.append({
                "name": d["name"],
                "essential": d.get("essential", True),
                "health_check": "healthCheck" in d,
                "health": labels.get(LABEL + "health", "HEALTHY"),
                "ignore_sigterm": labels.get(LABEL + "ignore-sigterm") == "true",
                "exit_after": exit_after,
                "exit_code": exit_code,
                "status": "PENDING",
                "exitCode": None,
                "reason": None,
                "healthStatus": None,
            })


class FakeAgent:
    """One fake node. start() registers it and starts its loop thread."""

    _counter = 0

    def __init__(self, berthd, node_id=None, cpu=4096, memory=16384, zone="us-east-1a",
                 step=0.05, poll_wait=1, allocation_factor=None):
        FakeAgent._counter += 1
        self.endpoint = berthd.endpoint
        with open(os.path.join(berthd.data_dir, "node-token")) as f:
            self.token = f.read().strip()
        self.node_id = node_id or f"fake-node-{os.getpid()}-{FakeAgent._counter}"
        self.cpu, self.memory, self.zone = cpu, memory, zone
        self.allocation_factor = allocation_factor
        self.step = step
        self.poll_wait = poll_wait
        self.tasks = {}
        self.revision = 0
        self.lost = False
        self.errors = []
        self.reports = []
        self._fail_next = None
        self._stop = threading.Event()
        self._thread = None
        self._lock = threading.Lock()
        self._ip_counter = 0
        self.number = FakeAgent._counter

    # -- protocol -------------------------------------------------------------------------
    def call(self, method, path, body=None, timeout=10):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.endpoint + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise AgentError(e.code, e.read().decode(errors="replace")) from None

    def register(self):
        body = {"nodeId": self.node_id, "cpu": self.cpu, "memory": self.memory,
                "availabilityZone": self.zone, "address": "127.0.0.1"}
        if self.allocation_factor is not None:
            body["allocationFactor"] = self.allocation_factor
        return self.call("POST", "/_berth/agent/register", body)["node"]

    def desired(self, after, wait):
        return self.call("GET", f"/_berth/agent/desired?node={self.node_id}&after={after}"
                                f"&wait={wait}", timeout=wait + 10)

    def report(self, task, **extra):
        task.seq += 1
        body = {"nodeId": self.node_id, "cluster": task.cluster, "taskId": task.id,
                "seq": task.seq, "lastStatus": task.status, "containers": []}
        for c in task.containers:
            item = {"name": c["name"], "lastStatus": c["status"],
                    "runtimeId": f"{task.id}-{abs(hash(c['name'])) % 10**10}"}
            if c["exitCode"] is not None:
                item["exitCode"] = c["exitCode"]
            if c["reason"]:
                item["reason"] = c["reason"]
            if c["healthStatus"]:
                item["healthStatus"] = c["healthStatus"]
            body["containers"].append(item)
        if task.ip:
            body["network"] = {"privateIpv4Address": task.ip,
                               "macAddress": "0e:%02x:%02x:%02x:%02x:%02x" % (
                                   self.number % 256, *[int(x) for x in task.ip.split(".")]),
                               "subnetGatewayIpv4Address": "10.%d.0.1/16" % (self.number % 256)}
        if task.stop_code:
            body["stopCode"] = task.stop_code
            body["stoppedReason"] = task.stop_reason
        body.update(extra)
        try:
            answer = self.call("POST", "/_berth/agent/report", body)
            self.reports.append((body, answer))
            task.unsent = None
            return answer
        except AgentError as e:
            if e.status == 404:
                task.done = True
            else:
                self.errors.append(str(e))
            return None
        except OSError as e:
            # The control plane is down (restarting): report again later, as a
            # real agent does, so the last state is not lost.
            self.errors.append(str(e))
            task.unsent = extra
            return None

    # -- test controls --------------------------------------------------------------------
    def start(self):
        self.register()
        self._thread = threading.Thread(target=self._loop, name=self.node_id, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def lose(self):
        """The node goes silent: no more polls or reports."""
        self.lost = True
        self.stop()

    def fail_next_start(self, reason):
        with self._lock:
            self._fail_next = reason

    # -- the loop -------------------------------------------------------------------------
    def _loop(self):
        while not self._stop.is_set():
            busy = self._busy()
            try:
                wait = 0 if busy or not self.revision else self.poll_wait
                state = self.desired(self.revision, wait)
            except AgentError as e:
                if e.status == 404:
                    try:
                        self.register()
                        self.revision = 0
                    except Exception as err:  # noqa: BLE001 - keep the fake alive
                        self.errors.append(str(err))
                        time.sleep(0.2)
                    continue
                self.errors.append(str(e))
                time.sleep(0.2)
                continue
            except Exception as e:  # noqa: BLE001 - the daemon may be restarting
                if self._stop.is_set():
                    return
                self.errors.append(str(e))
                time.sleep(0.2)
                continue
            self.revision = state["revision"]
            for task in list(self.tasks.values()):
                if getattr(task, "unsent", None) is not None and not task.done:
                    self.report(task, **task.unsent)
            self._apply_desired(state["tasks"])
            if state.get("retryAfterMs"):
                self._stop.wait(state["retryAfterMs"] / 1000)
            for task in list(self.tasks.values()):
                if not task.done:
                    self._advance(task)
            if busy:
                time.sleep(self.step)

    def _apply_desired(self, desired_tasks):
        now = time.time()
        seen = set()
        for d in desired_tasks:
            seen.add(d["taskId"])
            task = self.tasks.get(d["taskId"])
            if task is None:
                task = FakeTask(d, now)
                if d.get("lastStatus") and d["lastStatus"] != "PROVISIONING":
                    # Adopt a task this node ran before a restart of the fake.
                    task.status = d["lastStatus"]
                    if LIFECYCLE.index(task.status) >= LIFECYCLE.index("RUNNING"):
                        task.started = task.stopping_since = now
                        for c in task.containers:
                            c["status"] = "RUNNING"
                with self._lock:
                    if self._fail_next:
                        task.fail_start, self._fail_next = self._fail_next, None
                self.tasks[task.id] = task
            if d["desiredStatus"] == "STOPPED" and not task.stop_requested:
                task.stop_requested = True
        for task_id in list(self.tasks):
            if task_id not in seen and (self.tasks[task_id].status == "STOPPED"
                                        or self.tasks[task_id].done):
                del self.tasks[task_id]

    def _busy(self):
        """Whether some task has a step due within the next poll."""
        now = time.time()
        for task in self.tasks.values():
            if task.done or task.status == "STOPPED":
                continue
            if task.status != "RUNNING" or task.stop_requested:
                return True
            for c in task.containers:
                if (c["status"] == "RUNNING" and c["exit_after"] is not None
                        and task.started + c["exit_after"] <= now + self.poll_wait):
                    return True
        return False

    def _next_ip(self):
        self._ip_counter += 1
        n = self._ip_counter
        return f"10.{self.number % 256}.{n // 250}.{n % 250 + 2}"

    def _advance(self, task):
        """Moves the task one step if one is due; returns whether it moved."""
        now = time.time()
        if task.status == "STOPPED":
            return False
        if task.stop_requested and LIFECYCLE.index(task.status) < LIFECYCLE.index("RUNNING"):
            task.status = "STOPPED"
            for c in task.containers:
                c["status"] = "STOPPED"
            self.report(task)
            return True
        if task.status == "PROVISIONING":
            task.status = "PENDING"
            self.report(task)
            return True
        if task.status == "PENDING":
            task.status = "ACTIVATING"
            task.ip = self._next_ip()
            self.report(task, pullStartedAt=now)
            return True
        if task.status == "ACTIVATING":
            if task.fail_start:
                task.status = "STOPPED"
                task.stop_code = "TaskFailedToStart"
                task.stop_reason = task.fail_start
                for c in task.containers:
                    c["status"] = "STOPPED"
                    c["reason"] = task.fail_start
                self.report(task)
                return True
            task.status = "RUNNING"
            task.started = now
            for c in task.containers:
                c["status"] = "RUNNING"
                if c["health_check"]:
                    c["healthStatus"] = c["health"]
            self.report(task, pullStoppedAt=now, startedAt=now)
            return True
        if task.status == "RUNNING":
            if task.stop_requested:
                return self._begin_stop(task, None, None)
            exited = False
            for c in task.containers:
                if (c["status"] == "RUNNING" and c["exit_after"] is not None
                        and now >= task.started + c["exit_after"]):
                    c["status"] = "STOPPED"
                    c["exitCode"] = c["exit_code"]
                    exited = True
                    if c["essential"]:
                        return self._begin_stop(task, "EssentialContainerExited",
                                                "Essential container in task exited")
            if exited:
                self.report(task)
            return exited
        index = LIFECYCLE.index(task.status)
        if now - task.stopping_since < self.step:
            return True
        task.status = LIFECYCLE[index + 1]
        task.stopping_since = now
        if task.status == "DEPROVISIONING":
            for c in task.containers:
                if c["status"] != "STOPPED":
                    c["status"] = "STOPPED"
                    c["exitCode"] = 137 if c["ignore_sigterm"] else 143
            self.report(task, executionStoppedAt=now)
        else:
            self.report(task)
        return True

    def _begin_stop(self, task, code, reason):
        task.status = "DEACTIVATING"
        task.stopping_since = time.time()
        if code:
            task.stop_code, task.stop_reason = code, reason
        self.report(task)
        return True


def wait_for(predicate, timeout=20, interval=0.1, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")

