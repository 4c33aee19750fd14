"""A service on real containers keeps its desired count through a kill -9 of a task's process
and through a kill -9 and restart of berthd (the real node agent, runc, CNI)."""
import json
import os
import signal
import subprocess
import time

import pytest

from test_agent import NET, assert_no_leaks, make_node, register

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the node agent needs root")

WAIT = {"Delay": 1, "MaxAttempts": 90}


def service_tasks(ecs, name):
    arns = ecs.list_tasks(cluster="agent", serviceName=name)["taskArns"]
    return ecs.describe_tasks(cluster="agent", tasks=arns)["tasks"] if arns else []


def container_pid(node, task_arn):
    tid = task_arn.rsplit("/", 1)[1]
    out = subprocess.run(["runc", "--root", os.path.join(node.data_dir, "agent", "runc"),
                          "state", f"{tid}-app"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["pid"]


def wait_replaced(ecs, victim, count, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        tasks = service_tasks(ecs, "keep")
        running = [t for t in tasks if t["lastStatus"] == "RUNNING"
                   and t["desiredStatus"] == "RUNNING"]
        if len(running) == count and victim not in [t["taskArn"] for t in running]:
            return running
        time.sleep(0.3)
    raise AssertionError(f"no replacement for {victim}: "
                         f"{[(t['taskArn'][-6:], t['lastStatus']) for t in tasks]}")


def test_service_keeps_its_count_through_kill9_of_a_task_and_of_berthd(berthd_factory,
                                                                        tmp_path_factory):
    b = make_node(berthd_factory, tmp_path_factory, "resilience")
    ecs = b.client("ecs")
    register(b, "keep", [{"name": "app", "stopTimeout": 2,
                          "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]}])
    ecs.create_service(cluster="agent", serviceName="keep", taskDefinition="keep",
                       desiredCount=2, launchType="FARGATE", networkConfiguration=NET)
    ecs.get_waiter("services_stable").wait(cluster="agent", services=["keep"], WaiterConfig=WAIT)
    first = service_tasks(ecs, "keep")
    assert len(first) == 2

    # kill -9 of the container's main process: the task stops with the container's exit code
    # and the service starts a replacement.
    victim = first[0]["taskArn"]
    os.kill(container_pid(b, victim), signal.SIGKILL)
    running = wait_replaced(ecs, victim, 2)
    dead = ecs.describe_tasks(cluster="agent", tasks=[victim])["tasks"][0]
    assert dead["lastStatus"] == "STOPPED"
    assert dead["stopCode"] == "EssentialContainerExited"
    assert dead["containers"][0]["exitCode"] == 137
    ecs.get_waiter("services_stable").wait(cluster="agent", services=["keep"], WaiterConfig=WAIT)

    # kill -9 of berthd: the containers run on, and the restarted berthd adopts them without
    # starting or stopping anything.
    before = sorted(t["taskArn"] for t in running)
    pids = {arn: container_pid(b, arn) for arn in before}
    b.kill9()
    time.sleep(1)
    b.start()
    ecs = b.client("ecs")
    ecs.get_waiter("services_stable").wait(cluster="agent", services=["keep"], WaiterConfig=WAIT)
    after = sorted(t["taskArn"] for t in service_tasks(ecs, "keep")
                   if t["desiredStatus"] == "RUNNING")
    assert after == before
    assert {arn: container_pid(b, arn) for arn in after} == pids
    svc = ecs.describe_services(cluster="agent", services=["keep"])["services"][0]
    assert (svc["runningCount"], svc["desiredCount"]) == (2, 2)

    # The restarted berthd still keeps the count when an adopted task's process dies.
    victim = after[0]
    os.kill(pids[victim], signal.SIGKILL)
    wait_replaced(ecs, victim, 2)
    dead = ecs.describe_tasks(cluster="agent", tasks=[victim])["tasks"][0]
    assert dead["stopCode"] == "EssentialContainerExited"

    ecs.update_service(cluster="agent", service="keep", desiredCount=0)
    ecs.delete_service(cluster="agent", service="keep")
    ecs.get_waiter("services_inactive").wait(cluster="agent", services=["keep"],
                                             WaiterConfig=WAIT)
    deadline = time.time() + 60
    while time.time() < deadline and any(t["lastStatus"] != "STOPPED"
                                         for t in service_tasks(ecs, "keep")):
        time.sleep(0.5)
    assert all(t["lastStatus"] == "STOPPED" for t in service_tasks(ecs, "keep"))
    b.stop()
    assert_no_leaks(b)
