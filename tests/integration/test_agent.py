"""The node agent: tasks run as real containers (runc, cgroups, a network
namespace and IP per task) behind the ECS API.

Needs root, runc and the CNI plugins, as the agent itself does.
"""
import base64
import json
import os
import subprocess
import time
import urllib.request

import botocore.exceptions
import pytest

from images import build_image

NET = {"awsvpcConfiguration": {"subnets": ["subnet-agent"]}}
EXEC_ROLE = "arn:aws:iam::000000000000:role/ecsTaskExecutionRole"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the node agent needs root")


APPLETS = ("sh", "echo", "cat", "ls", "sleep", "env", "wget", "httpd", "nc", "true", "false",
           "id", "hostname", "kill", "mkdir", "tail", "head", "grep", "sed", "dd", "yes", "test",
           "trap")


def push_image(b, tmp_path_factory, repo, tag="v1", files=None, cmd=("sh",)):
    """Builds a busybox image (its layer made distinct by `files`) and pushes it to `b`."""
    ecr = b.client("ecr")
    ecr.create_repository(repositoryName=repo)
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    creds = base64.b64decode(token).decode()
    layout = str(tmp_path_factory.mktemp("agent-image"))
    img = build_image(layout, tag=tag, cmd=list(cmd), applets=APPLETS, files=files)
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", creds,
                    img.reference, f"docker://localhost:{b.port}/{repo}:{tag}"],
                   check=True, timeout=120)
    return img


def make_node(berthd_factory, tmp_path_factory, name, extra_args=()):
    """A berthd with the real agent, the test image pushed and cluster "agent"."""
    b = berthd_factory(name, extra_args=extra_args, agent=True)
    img = push_image(b, tmp_path_factory, "agent-app")
    b.client("ecs").create_cluster(clusterName="agent")
    b.client("logs").create_log_group(logGroupName="/ecs/agent")
    b.image = "agent-app:v1"
    b.image_digest = img.manifest_digest
    b.layer_digests = img.layer_digests
    return b


@pytest.fixture(scope="module")
def node(berthd_factory, tmp_path_factory):
    b = make_node(berthd_factory, tmp_path_factory, "agent")
    yield b
    # Nothing of the node may outlive its tasks.
    b.stop()
    assert_no_leaks(b)


def assert_no_leaks(b):
    netns = [n for n in os.listdir("/run/netns") if n.startswith("berth-")] \
        if os.path.isdir("/run/netns") else []
    ours = [n for n in netns if os.path.isdir(os.path.join(b.data_dir, "agent", "tasks",
                                                           n[len("berth-"):]))]
    assert ours == []
    for ctrl in ("memory", "cpu", "pids"):
        path = f"/sys/fs/cgroup/{ctrl}/{b.cgroup_parent}"
        assert not os.path.exists(path) or os.listdir(path) == [] or all(
            not os.path.isdir(os.path.join(path, e)) for e in os.listdir(path)), path
    ports = subprocess.run(["ip", "-o", "link", "show", "master", b.bridge],
                           capture_output=True, text=True).stdout
    assert ports.strip() == ""
    runc = subprocess.run(["runc", "--root", os.path.join(b.data_dir, "agent", "runc"), "list",
                           "-q"], capture_output=True, text=True).stdout
    assert runc.strip() == ""
    with open("/proc/self/mountinfo") as f:
        assert os.path.join(b.data_dir, "agent") not in f.read()
    assert shims_of(b) == []


def shims_of(b):
    """Pids of berth-shim processes still waiting for containers of `b`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        if comm == "berth-shim" and b.data_dir + "/" in cmdline:
            found.append(int(pid))
    return found


def proc_ids(pid):
    """Parent, process group and session of `pid` (fields 4, 5 and 6 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    rest = text[text.rindex(")") + 2:].split()  # the command may hold spaces
    return {"ppid": int(rest[1]), "pgrp": int(rest[2]), "session": int(rest[3])}


def runc_state(b, container_id):
    out = subprocess.run(["runc", "--root", os.path.join(b.data_dir, "agent", "runc"), "state",
                          container_id], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else None


def layer_paths(b, digest):
    """Where the node keeps `digest`: its unpacked layer dir and its compressed blob."""
    hexdigest = digest.split(":", 1)[1]
    images = os.path.join(b.data_dir, "agent", "images")
    return (os.path.join(images, "layers", "sha256", hexdigest),
            os.path.join(images, "blobs", "sha256", hexdigest))


def cached(b, digest):
    layer, blob = layer_paths(b, digest)
    return os.path.isdir(layer) and os.path.isfile(blob)


def gone(b, digest):
    return not any(os.path.exists(p) for p in layer_paths(b, digest))


def wait_for(predicate, timeout, step=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def register(node, family, containers, cpu="256", memory="512"):
    ecs = node.client("ecs")
    for c in containers:
        c.setdefault("image", node.image)
    return ecs.register_task_definition(
        family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu=cpu,
        memory=memory, executionRoleArn=EXEC_ROLE, containerDefinitions=containers,
    )["taskDefinition"]


def logged(name, prefix="t"):
    return {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/agent",
                                                "awslogs-region": "us-east-1",
                                                "awslogs-stream-prefix": prefix}}


def run(node, family, **kw):
    ecs = node.client("ecs")
    out = ecs.run_task(cluster="agent", taskDefinition=family, launchType="FARGATE",
                       networkConfiguration=NET, **kw)
    assert out["failures"] == [], out["failures"]
    return out["tasks"][0]["taskArn"]


def describe(node, arn):
    return node.client("ecs").describe_tasks(cluster="agent", tasks=[arn])["tasks"][0]


def wait_status(node, arn, status, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        t = describe(node, arn)
        if t["lastStatus"] == status:
            return t
        if t["lastStatus"] == "STOPPED" and status != "STOPPED":
            raise AssertionError(f"task stopped: {t.get('stoppedReason')}")
        time.sleep(0.1)
    raise AssertionError(f"task not {status} in {timeout}s: {describe(node, arn)['lastStatus']}")


def task_ip(task):
    return task["containers"][0]["networkInterfaces"][0]["privateIpv4Address"]


def log_lines(node, stream, want=None, timeout=15):
    logs = node.client("logs")
    deadline = time.time() + timeout
    msgs = []
    while time.time() < deadline:
        try:
            ev = logs.get_log_events(logGroupName="/ecs/agent", logStreamName=stream,
                                     startFromHead=True)["events"]
            msgs = [e["message"] for e in ev]
        except botocore.exceptions.ClientError:
            msgs = []
        if want is None and msgs or want is not None and any(want in m for m in msgs):
            return msgs
        time.sleep(0.2)
    return msgs


def stop(node, arn, reason="test done"):
    node.client("ecs").stop_task(cluster="agent", task=arn, reason=reason)
    return wait_status(node, arn, "STOPPED", timeout=90)


def test_httpd_task_reachable_at_its_ip(node):
    register(node, "web", [{"name": "web", "command": [
        "sh", "-c", "mkdir -p /tmp/w; echo served-by-berth > /tmp/w/index.html; "
                    "exec httpd -f -p 8080 -h /tmp/w"],
        "portMappings": [{"containerPort": 8080}], "stopTimeout": 2}])
    arn = run(node, "web")
    t = wait_status(node, arn, "RUNNING")
    ip = task_ip(t)
    assert ip.startswith(node.subnet.rsplit(".", 1)[0] + ".")
    eni = t["attachments"][0]
    assert eni["type"] == "ElasticNetworkInterface"
    details = {d["name"]: d["value"] for d in eni["details"]}
    assert details["privateIPv4Address"] == ip
    assert t["containers"][0]["imageDigest"] == node.image_digest
    body = ""
    for _ in range(50):
        try:
            body = urllib.request.urlopen(f"http://{ip}:8080/", timeout=2).read().decode()
            break
        except OSError:
            time.sleep(0.1)
    assert body == "served-by-berth\n"
    s = stop(node, arn)
    assert s["stopCode"] == "UserInitiated"
    assert s["stoppedReason"] == "test done"


def test_two_containers_share_localhost(node):
    register(node, "pair", [
        {"name": "server", "stopTimeout": 2,
         "command": ["sh", "-c", "mkdir -p /tmp/w; echo pong > /tmp/w/p; "
                                 "exec httpd -f -p 9000 -h /tmp/w"]},
        {"name": "client", "essential": False, "logConfiguration": logged("client"),
         "stopTimeout": 2,
         "command": ["sh", "-c", "sleep 1; wget -q -O - http://127.0.0.1:9000/p; sleep 300"]}])
    arn = run(node, "pair")
    wait_status(node, arn, "RUNNING")
    tid = arn.rsplit("/", 1)[1]
    assert "pong" in log_lines(node, f"t/client/{tid}", want="pong")
    stop(node, arn)


def test_environment_and_command_overrides(node):
    register(node, "envs", [{"name": "app", "logConfiguration": logged("app"),
                             "environment": [{"name": "FROM_DEF", "value": "d"}],
                             "command": ["sh", "-c", "echo never"]}])
    arn = run(node, "envs", overrides={"containerOverrides": [{
        "name": "app", "command": ["sh", "-c", "echo got=$FROM_DEF/$FROM_OVERRIDE/$AWS_REGION/"
                                               "$AWS_EXECUTION_ENV"],
        "environment": [{"name": "FROM_OVERRIDE", "value": "o"}]}]})
    t = wait_status(node, arn, "STOPPED")
    tid = arn.rsplit("/", 1)[1]
    assert log_lines(node, f"t/app/{tid}", want="got=") == ["got=d/o/us-east-1/AWS_ECS_FARGATE"]
    assert t["containers"][0]["exitCode"] == 0
    assert t["stopCode"] == "EssentialContainerExited"


def test_awslogs_stream_naming_c14(node):
    register(node, "c14", [{"name": "app", "logConfiguration": logged("app", prefix="svc"),
                            "command": ["echo", "hello-c14"]}])
    arn = run(node, "c14")
    wait_status(node, arn, "STOPPED")
    tid = arn.rsplit("/", 1)[1]
    streams = [s["logStreamName"] for s in node.client("logs").describe_log_streams(
        logGroupName="/ecs/agent", logStreamNamePrefix="svc/")["logStreams"]]
    assert f"svc/app/{tid}" in streams
    assert log_lines(node, f"svc/app/{tid}", want="hello-c14") == ["hello-c14"]


def test_essential_exit_stops_task_c11(node):
    register(node, "c11", [
        {"name": "app", "command": ["sh", "-c", "sleep 1; exit 3"]},
        {"name": "sidecar", "essential": False, "command": ["sh", "-c", "sleep 3600"],
         "stopTimeout": 2}])
    arn = run(node, "c11")
    ecs = node.client("ecs")
    ecs.get_waiter("tasks_stopped").wait(cluster="agent", tasks=[arn],
                                         WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    t = describe(node, arn)
    assert t["desiredStatus"] == "STOPPED"
    assert t["stopCode"] == "EssentialContainerExited"
    assert t["stoppedReason"] == "Essential container in task exited"
    by = {c["name"]: c for c in t["containers"]}
    assert by["app"]["exitCode"] == 3
    assert by["sidecar"]["lastStatus"] == "STOPPED"
    assert by["sidecar"]["exitCode"] in (137, 143, 0)
    assert t["stoppedAt"] and t["executionStoppedAt"]


def test_non_essential_exit_keeps_task_running(node):
    register(node, "c11b", [
        {"name": "app", "command": ["sh", "-c", "sleep 3600"], "stopTimeout": 2},
        {"name": "sidecar", "essential": False, "command": ["sh", "-c", "exit 5"]}])
    arn = run(node, "c11b")
    wait_status(node, arn, "RUNNING")
    deadline = time.time() + 10
    while time.time() < deadline:
        side = {c["name"]: c for c in describe(node, arn)["containers"]}["sidecar"]
        if side.get("exitCode") is not None:
            break
        time.sleep(0.2)
    t = describe(node, arn)
    assert t["lastStatus"] == "RUNNING"
    assert {c["name"]: c for c in t["containers"]}["sidecar"]["exitCode"] == 5
    stop(node, arn)


def test_stop_timeout_then_sigkill_c12(node):
    register(node, "c12", [{"name": "stubborn", "stopTimeout": 3, "command": [
        "sh", "-c", "trap '' TERM; while :; do sleep 1; done"]}])
    arn = run(node, "c12")
    wait_status(node, arn, "RUNNING")
    t0 = time.time()
    out = node.client("ecs").stop_task(cluster="agent", task=arn, reason="c12 test")
    assert out["task"]["desiredStatus"] == "STOPPED"
    t = wait_status(node, arn, "STOPPED", timeout=60)
    took = time.time() - t0
    assert 3 <= took < 20, took
    assert t["containers"][0]["exitCode"] == 137
    assert t["stopCode"] == "UserInitiated"
    assert t["stoppedReason"] == "c12 test"


def test_memory_hog_is_oom_killed(node):
    register(node, "hog", [{"name": "hog", "memory": 64, "command": [
        "sh", "-c", "tail /dev/zero"]}], memory="512")
    arn = run(node, "hog")
    t = wait_status(node, arn, "STOPPED", timeout=60)
    c = t["containers"][0]
    assert c["exitCode"] == 137
    assert c["reason"] == "OutOfMemoryError: Container killed due to memory usage"
    assert t["stopCode"] == "EssentialContainerExited"


def test_task_cgroup_has_the_task_size(node):
    register(node, "sized", [{"name": "app", "command": ["sleep", "300"], "stopTimeout": 2}],
             cpu="512", memory="1024")
    arn = run(node, "sized")
    wait_status(node, arn, "RUNNING")
    tid = arn.rsplit("/", 1)[1]
    base_cpu = f"/sys/fs/cgroup/cpu/{node.cgroup_parent}/{tid}"
    base_mem = f"/sys/fs/cgroup/memory/{node.cgroup_parent}/{tid}"
    if os.path.exists(base_cpu):
        assert open(f"{base_cpu}/cpu.cfs_quota_us").read().strip() == "50000"
        assert open(f"{base_cpu}/cpu.cfs_period_us").read().strip() == "100000"
        assert open(f"{base_mem}/memory.limit_in_bytes").read().strip() == str(1024 << 20)
    else:  # cgroup v2
        base = f"/sys/fs/cgroup/{node.cgroup_parent}/{tid}"
        assert open(f"{base}/cpu.max").read().split() == ["50000", "100000"]
        assert open(f"{base}/memory.max").read().strip() == str(1024 << 20)
    stop(node, arn)


def test_depends_on_healthy_delays_start(node):
    register(node, "deps", [
        {"name": "db", "command": ["sh", "-c", "sleep 2; touch /tmp/ready; sleep 3600"],
         "stopTimeout": 2,
         "healthCheck": {"command": ["CMD-SHELL", "test -f /tmp/ready"], "interval": 5,
                         "timeout": 2, "retries": 3}},
        {"name": "app", "stopTimeout": 2, "command": ["sleep", "3600"],
         "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}]}])
    arn = run(node, "deps")
    t = wait_status(node, arn, "RUNNING", timeout=60)
    by = {c["name"]: c for c in t["containers"]}
    assert by["db"]["healthStatus"] == "HEALTHY"
    assert by["app"]["lastStatus"] == "RUNNING"
    stop(node, arn)


def test_dependency_success_non_essential_init_c05(node):
    register(node, "c05", [
        {"name": "init", "essential": False, "command": ["true"]},
        {"name": "app", "stopTimeout": 2, "command": ["sleep", "300"],
         "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}]}])
    arn = run(node, "c05")
    t = wait_status(node, arn, "RUNNING", timeout=30)
    by = {c["name"]: c for c in t["containers"]}
    assert by["init"]["lastStatus"] == "STOPPED" and by["init"]["exitCode"] == 0
    assert by["app"]["lastStatus"] == "RUNNING"
    stop(node, arn)


def test_task_metadata_endpoint(node):
    register(node, "meta", [{"name": "app", "logConfiguration": logged("app"), "command": [
        "sh", "-c", "wget -q -O - $ECS_CONTAINER_METADATA_URI_V4/task; echo; "
                    "wget -q -O - $ECS_CONTAINER_METADATA_URI_V4; echo; "
                    "wget -q -O - $ECS_CONTAINER_METADATA_URI_V4/stats; echo"]}])
    arn = run(node, "meta")
    wait_status(node, arn, "STOPPED")
    tid = arn.rsplit("/", 1)[1]
    lines = log_lines(node, f"t/app/{tid}", want="memory_stats")
    task_md, container_md, stats = (json.loads(l) for l in lines[:3])
    assert task_md["TaskARN"] == arn
    assert task_md["Cluster"] == "agent"
    assert task_md["Family"] == "meta"
    assert task_md["LaunchType"] == "FARGATE"
    assert task_md["Limits"] == {"CPU": 0.25, "Memory": 512}
    assert container_md["Name"] == "app"
    assert container_md["Networks"][0]["NetworkMode"] == "awsvpc"
    assert "usage" in stats["memory_stats"] and "cpu_usage" in stats["cpu_stats"]


def test_pull_failure_is_cannot_pull_container_error(node):
    register(node, "nopull", [{"name": "app", "image": "does-not-exist:latest"}])
    arn = run(node, "nopull")
    t = wait_status(node, arn, "STOPPED", timeout=30)
    assert t["stopCode"] == "TaskFailedToStart"
    assert t["stoppedReason"].startswith("CannotPullContainerError: ")


def test_list_tasks_desired_status_with_real_containers_c07(node):
    ecs = node.client("ecs")
    register(node, "c07", [{"name": "app", "command": ["sleep", "3600"], "stopTimeout": 2}])
    register(node, "c07-done", [{"name": "app", "command": ["true"]}])
    a = run(node, "c07")
    b = run(node, "c07")
    c = run(node, "c07-done")
    wait_status(node, a, "RUNNING")
    wait_status(node, b, "RUNNING")
    stop(node, b)
    wait_status(node, c, "STOPPED")
    running = set(ecs.list_tasks(cluster="agent", family="c07")["taskArns"])
    assert running == {a}
    stopped = set(ecs.list_tasks(cluster="agent", desiredStatus="STOPPED")["taskArns"])
    assert {b, c} <= stopped and a not in stopped
    assert describe(node, c)["desiredStatus"] == "STOPPED"
    stop(node, a)


def test_agent_restart_keeps_tasks_running(berthd_factory, tmp_path_factory):
    b = make_node(berthd_factory, tmp_path_factory, "agent-restart")
    register(b, "survivor", [{"name": "app", "stopTimeout": 2, "logConfiguration": logged("app"),
                              "command": ["sh", "-c", "i=0; while :; do i=$((i+1)); "
                                                      "echo tick-$i; sleep 0.5; done"]}])
    arn = run(b, "survivor")
    t = wait_status(b, arn, "RUNNING")
    tid = arn.rsplit("/", 1)[1]
    ip = task_ip(t)
    assert log_lines(b, f"t/app/{tid}", want="tick-2")
    runc_root = os.path.join(b.data_dir, "agent", "runc")
    pid_before = json.loads(subprocess.run(["runc", "--root", runc_root, "state", f"{tid}-app"],
                                           capture_output=True, text=True).stdout)["pid"]

    b.kill9()
    time.sleep(1.5)  # the container runs on without its agent
    b.start()

    t = wait_status(b, arn, "RUNNING", timeout=10)
    assert task_ip(t) == ip
    state = json.loads(subprocess.run(["runc", "--root", runc_root, "state", f"{tid}-app"],
                                      capture_output=True, text=True).stdout)
    assert state["status"] == "running" and state["pid"] == pid_before
    # Output written while no agent ran is shipped once, in order.
    msgs = log_lines(b, f"t/app/{tid}", want="tick-12", timeout=20)
    ticks = [int(m.split("-")[1]) for m in msgs if m.startswith("tick-")]
    assert ticks == list(range(1, len(ticks) + 1)), ticks
    # The restarted agent still manages the task: it stops it and cleans up.
    s = stop(b, arn)
    assert s["stopCode"] == "UserInitiated"
    assert s["containers"][0]["lastStatus"] == "STOPPED"
    b.stop()
    assert_no_leaks(b)


def test_fifty_start_stop_cycles_leave_nothing(node):
    register(node, "cycles", [{"name": "app", "command": ["true"]}])
    ecs = node.client("ecs")
    arns = []
    for _ in range(10):
        out = ecs.run_task(cluster="agent", taskDefinition="cycles", launchType="FARGATE",
                           networkConfiguration=NET, count=5)
        assert out["failures"] == []
        batch = [t["taskArn"] for t in out["tasks"]]
        for arn in batch:
            t = wait_status(node, arn, "STOPPED", timeout=60)
            assert t["containers"][0]["exitCode"] == 0
        arns += batch
    assert len(set(arns)) == 50
    # Every task's namespace, veth, cgroup, mounts and runc state are gone.
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            assert_no_leaks(node)
            break
        except AssertionError:
            time.sleep(0.5)
    assert_no_leaks(node)


def test_failing_health_check_makes_the_service_replace_the_task(node):
    register(node, "sick", [{"name": "app", "stopTimeout": 2, "command": [
        "sh", "-c", "touch /tmp/ok; sleep 6; rm /tmp/ok; sleep 3600"],
        "healthCheck": {"command": ["CMD-SHELL", "test -f /tmp/ok"], "interval": 5,
                        "timeout": 2, "retries": 1}}])
    ecs = node.client("ecs")
    ecs.create_service(cluster="agent", serviceName="sick", taskDefinition="sick",
                       desiredCount=1, launchType="FARGATE", networkConfiguration=NET)
    first = None
    deadline = time.time() + 30
    while time.time() < deadline and first is None:
        arns = ecs.list_tasks(cluster="agent", serviceName="sick")["taskArns"]
        first = arns[0] if arns else None
        time.sleep(0.2)
    assert first
    deadline = time.time() + 60
    replaced = None
    while time.time() < deadline:
        arns = ecs.list_tasks(cluster="agent", serviceName="sick")["taskArns"]
        if any(a != first for a in arns) and describe(node, first)["desiredStatus"] == "STOPPED":
            replaced = [a for a in arns if a != first][0]
            break
        time.sleep(0.5)
    assert replaced, "the unhealthy task was not replaced"
    old = wait_status(node, first, "STOPPED", timeout=60)
    assert old["stopCode"] == "ServiceSchedulerInitiated"
    assert "health checks" in old["stoppedReason"]
    ecs.update_service(cluster="agent", service="sick", desiredCount=0)
    ecs.delete_service(cluster="agent", service="sick")
    ecs.get_waiter("services_inactive").wait(cluster="agent", services=["sick"],
                                             WaiterConfig={"Delay": 1, "MaxAttempts": 90})
    deadline = time.time() + 60
    while time.time() < deadline and ecs.list_tasks(cluster="agent",
                                                    serviceName="sick")["taskArns"]:
        time.sleep(0.5)
    assert ecs.list_tasks(cluster="agent", serviceName="sick")["taskArns"] == []


def test_unused_image_layers_are_collected_and_running_ones_kept(berthd_factory,
                                                                 tmp_path_factory):
    b = make_node(berthd_factory, tmp_path_factory, "agent-image-gc",
                  extra_args=["--image-gc-interval", "1", "--image-gc-grace", "4"])
    a = push_image(b, tmp_path_factory, "gc-a", files={"/marker": "image A"})
    c = push_image(b, tmp_path_factory, "gc-c", files={"/marker": "image C"})
    assert not set(a.layer_digests) & set(b.layer_digests)
    register(b, "gc-keep", [{"name": "app", "command": ["sleep", "3600"], "stopTimeout": 2}])
    register(b, "gc-a", [{"name": "app", "image": "gc-a:v1", "command": ["true"]}])
    register(b, "gc-c", [{"name": "app", "image": "gc-c:v1", "command": ["true"]}])
    keep = run(b, "gc-keep")
    wait_status(b, keep, "RUNNING")
    t = wait_status(b, run(b, "gc-a"), "STOPPED")
    assert t["containers"][0]["exitCode"] == 0
    # Within the grace period the stopped task's layers stay, for a task that may want them.
    assert all(cached(b, d) for d in a.layer_digests)
    assert os.path.isfile(layer_paths(b, a.config_digest)[1])
    t0 = time.time()
    assert wait_for(lambda: all(gone(b, d) for d in a.layer_digests + [a.config_digest]), 20)
    print(f"image A collected {time.time() - t0:.1f}s after its task stopped (grace 4s)")
    assert all(cached(b, d) for d in b.layer_digests)

    # A task taken back after a restart keeps its layers: the restarted agent reads them from
    # the task's record. It does collect the rest (here C, whose task ended just before).
    wait_status(b, run(b, "gc-c"), "STOPPED")
    assert all(cached(b, d) for d in c.layer_digests)
    b.kill9()
    b.start()
    wait_status(b, keep, "RUNNING", timeout=10)
    assert wait_for(lambda: all(gone(b, d) for d in c.layer_digests), 20)
    time.sleep(2)  # two more collections
    assert all(cached(b, d) for d in b.layer_digests)
    state = json.load(open(os.path.join(b.data_dir, "agent", "tasks", keep.rsplit("/", 1)[1],
                                        "state.json")))
    recorded = [l["digest"] for l in state["containers"][0]["image"]["layers"]]
    assert recorded == b.layer_digests
    assert "event=images_collected" in open(b.log_path).read()
    stop(b, keep)
    b.stop()
    assert_no_leaks(b)


def upstream_registry(berthd_factory, tmp_path_factory, name):
    """A second berthd serving an image only to clients with its registry credentials."""
    up = berthd_factory(name)
    img = push_image(up, tmp_path_factory, "upstream/app",
                     files={"/marker": "served by the upstream registry"})
    token = up.client("ecr").get_authorization_token()["authorizationData"][0]
    return up, img, token["authorizationToken"]


def test_pull_from_another_registry_without_credentials_fails(node, berthd_factory,
                                                              tmp_path_factory):
    up, img, _ = upstream_registry(berthd_factory, tmp_path_factory, "upstream-anonymous")
    register(node, "upstream-anon", [{"name": "app",
                                      "image": f"127.0.0.1:{up.port}/upstream/app:v1"}])
    t = wait_status(node, run(node, "upstream-anon"), "STOPPED", timeout=30)
    assert t["stopCode"] == "TaskFailedToStart"
    assert t["stoppedReason"].startswith("CannotPullContainerError: ")
    assert "pull access denied" in t["stoppedReason"]
    assert "no basic auth credentials" in t["stoppedReason"]


def test_pull_from_another_registry_with_an_auth_file(berthd_factory, tmp_path_factory):
    up, img, token = upstream_registry(berthd_factory, tmp_path_factory, "upstream-auth")
    auth_file = str(tmp_path_factory.mktemp("registry-auth") / "config.json")
    with open(auth_file, "w") as f:  # a login to some other registry only
        json.dump({"auths": {"127.0.0.1:1": {"auth": token}}}, f)
    b = make_node(berthd_factory, tmp_path_factory, "agent-registry-auth",
                  extra_args=["--registry-auth", auth_file])
    image = f"127.0.0.1:{up.port}/upstream/app:v1"
    register(b, "upstream", [{"name": "app", "image": image, "logConfiguration": logged("app"),
                              "command": ["cat", "/marker"]}])
    t = wait_status(b, run(b, "upstream"), "STOPPED", timeout=30)
    assert t["stopCode"] == "TaskFailedToStart"
    assert t["stoppedReason"].startswith("CannotPullContainerError: ")
    assert "no basic auth credentials" in t["stoppedReason"]

    # The file is read at every pull: a login written now is used by the next task.
    with open(auth_file, "w") as f:
        json.dump({"auths": {f"127.0.0.1:{up.port}": {"auth": token}}}, f)
    arn = run(b, "upstream")
    t = wait_status(b, arn, "STOPPED", timeout=30)
    assert t["stopCode"] == "EssentialContainerExited", t.get("stoppedReason")
    assert t["containers"][0]["exitCode"] == 0
    assert t["containers"][0]["imageDigest"] == img.manifest_digest
    tid = arn.rsplit("/", 1)[1]
    assert log_lines(b, f"t/app/{tid}", want="upstream") == ["served by the upstream registry"]
    b.stop()
    assert_no_leaks(b)


def test_exit_code_of_a_container_that_ends_while_berthd_is_down(berthd_factory,
                                                                 tmp_path_factory):
    b = make_node(berthd_factory, tmp_path_factory, "agent-exit-code")
    register(b, "late-exit", [
        {"name": "app", "command": ["sh", "-c", "sleep 4; exit 7"]},
        {"name": "side", "essential": False, "stopTimeout": 2, "command": ["sleep", "3600"]}])
    arn = run(b, "late-exit")
    wait_status(b, arn, "RUNNING")
    tid = arn.rsplit("/", 1)[1]
    pid = runc_state(b, f"{tid}-app")["pid"]
    b.kill9()
    # The container ends while no berthd runs; its parent, berth-shim, outlives berthd.
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 15)
    b.start()
    t = wait_status(b, arn, "STOPPED", timeout=30)
    by = {c["name"]: c for c in t["containers"]}
    assert by["app"]["exitCode"] == 7
    assert "reason" not in by["app"]
    assert t["stopCode"] == "EssentialContainerExited"
    assert t["stoppedReason"] == "Essential container in task exited"
    assert by["side"]["exitCode"] in (137, 143)
    b.stop()
    assert_no_leaks(b)


def test_runc_and_containers_run_outside_berthds_session(berthd_factory, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runtime-wrapper")
    calls = tmp / "calls"
    wrapper = tmp / "runc-wrapper"
    # Records the process group and session of every runtime call, then is runc.
    wrapper.write_text("#!/bin/sh\n"
                       f"echo \"$(cut -d' ' -f5,6 /proc/$$/stat) $*\" >> {calls}\n"
                       "exec runc \"$@\"\n")
    wrapper.chmod(0o755)
    b = make_node(berthd_factory, tmp_path_factory, "agent-session",
                  extra_args=["--runtime", str(wrapper)])
    register(b, "session", [{"name": "app", "stopTimeout": 2, "command": ["sleep", "3600"],
                             "healthCheck": {"command": ["CMD", "true"], "interval": 5,
                                             "timeout": 2, "retries": 1}}])
    arn = run(b, "session")
    wait_status(b, arn, "RUNNING")
    tid = arn.rsplit("/", 1)[1]
    assert wait_for(
        lambda: describe(b, arn)["containers"][0].get("healthStatus") == "HEALTHY", 15)
    berthd = proc_ids(b.proc.pid)
    init = runc_state(b, f"{tid}-app")["pid"]
    container = proc_ids(init)
    shim = proc_ids(container["ppid"])
    stop(b, arn)
    assert container["session"] != berthd["session"]
    assert container["pgrp"] != berthd["pgrp"]
    assert shim["session"] != berthd["session"]
    lines = calls.read_text().splitlines()
    assert any(" run " in f" {l} " for l in lines), lines
    assert any(" exec " in f" {l} " for l in lines), lines
    assert any(" kill " in f" {l} " for l in lines), lines
    for line in lines:
        pgrp, session = (int(x) for x in line.split()[:2])
        assert session != berthd["session"], line
        assert pgrp != berthd["pgrp"], line
    b.stop()
    assert_no_leaks(b)
