"""ECS tasks through boto3 against berthd, with FakeAgent nodes (a test double of the node
agent that runs no containers) playing the tasks through their lifecycle."""
import concurrent.futures
import json
import re
import time
import urllib.error
import urllib.request

import botocore.exceptions
import pytest

from conftest import ACCOUNT, REGION
from fake_agent import FakeAgent, wait_for

NET = {"awsvpcConfiguration": {"subnets": ["subnet-0123456789abcdef0"],
                               "securityGroups": ["sg-0123456789abcdef0"]}}
TASK_ARN = re.compile(rf"^arn:aws:ecs:{REGION}:{ACCOUNT}:task/([A-Za-z0-9_-]+)/([0-9a-f]{{32}})$")
FAST = {"Delay": 1, "MaxAttempts": 60}


def error_of(call, *args, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(*args, **kwargs)
    err = info.value.response
    return err["Error"]["Code"], err["Error"]["Message"], err["ResponseMetadata"]["HTTPStatusCode"]


def container(name="app", command=("sleep", "3600"), **extra):
    return {"name": name, "image": "busybox", "command": list(command), **extra}


def register(ecs, family, containers=None, cpu="256", memory="512", **extra):
    return ecs.register_task_definition(
        family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu=cpu,
        memory=memory, containerDefinitions=containers or [container()],
        **extra)["taskDefinition"]["taskDefinitionArn"]


def run(ecs, cluster, td, **kwargs):
    kwargs.setdefault("launchType", "FARGATE")
    kwargs.setdefault("networkConfiguration", NET)
    return ecs.run_task(cluster=cluster, taskDefinition=td, **kwargs)


def run_one(ecs, cluster, td, **kwargs):
    out = run(ecs, cluster, td, **kwargs)
    assert out["failures"] == [], out["failures"]
    assert len(out["tasks"]) == 1
    return out["tasks"][0]["taskArn"]


def describe(ecs, cluster, arn, **kwargs):
    tasks = ecs.describe_tasks(cluster=cluster, tasks=[arn], **kwargs)["tasks"]
    assert len(tasks) == 1
    return tasks[0]


def wait_running(ecs, cluster, *arns):
    ecs.get_waiter("tasks_running").wait(cluster=cluster, tasks=list(arns), WaiterConfig=FAST)


def wait_stopped(ecs, cluster, *arns):
    ecs.get_waiter("tasks_stopped").wait(cluster=cluster, tasks=list(arns), WaiterConfig=FAST)


@pytest.fixture(scope="module")
def plane(berthd_factory):
    """A berthd with two fake nodes in two zones."""
    b = berthd_factory("ecs-tasks", extra_args=["--no-agent"])
    agents = [FakeAgent(b, zone="us-east-1a").start(), FakeAgent(b, zone="us-east-1b").start()]
    yield b
    for a in agents:
        assert a.errors == [], a.errors
        a.stop()


@pytest.fixture
def ecs_t(plane):
    return plane.client("ecs")


@pytest.fixture(scope="module")
def cluster(plane):
    ecs = plane.client("ecs")
    ecs.create_cluster(clusterName="tasks", capacityProviders=["FARGATE", "FARGATE_SPOT"])
    register(ecs, "sleeper")
    return "tasks"


def test_ecs_run_task_answers_like_aws(ecs_t, cluster):
    out = run(ecs_t, cluster, "sleeper", startedBy="ci-job", group="batch:1",
              tags=[{"key": "env", "value": "test"}], enableExecuteCommand=True)
    assert out["failures"] == []
    task = out["tasks"][0]
    m = TASK_ARN.match(task["taskArn"])
    assert m and m.group(1) == cluster
    assert task["clusterArn"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}"
    assert task["taskDefinitionArn"].endswith(":task-definition/sleeper:1")
    assert (task["lastStatus"], task["desiredStatus"]) == ("PROVISIONING", "RUNNING")
    assert (task["launchType"], task["platformVersion"], task["platformFamily"]) == (
        "FARGATE", "1.4.0", "Linux")
    assert (task["cpu"], task["memory"]) == ("256", "512")
    assert task["startedBy"] == "ci-job" and task["group"] == "batch:1"
    assert task["enableExecuteCommand"] is True
    assert task["ephemeralStorage"] == {"sizeInGiB": 20}
    assert task["overrides"] == {"containerOverrides": [], "inferenceAcceleratorOverrides": []}
    assert task["tags"] == [{"key": "env", "value": "test"}]
    assert task["availabilityZone"] in ("us-east-1a", "us-east-1b")
    eni = task["attachments"][0]
    assert (eni["type"], eni["status"]) == ("ElasticNetworkInterface", "PRECREATED")
    assert eni["details"] == [{"name": "subnetId", "value": "subnet-0123456789abcdef0"}]
    c = task["containers"][0]
    assert (c["name"], c["image"], c["lastStatus"]) == ("app", "busybox", "PENDING")
    assert c["taskArn"] == task["taskArn"]
    assert c["containerArn"].startswith(
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:container/{cluster}/{m.group(2)}/")
    ecs_t.stop_task(cluster=cluster, task=task["taskArn"])


def test_ecs_tasks_running_waiter_and_running_task_details(ecs_t, cluster):
    arn = run_one(ecs_t, cluster, "sleeper")
    wait_running(ecs_t, cluster, arn)
    task = describe(ecs_t, cluster, arn)
    assert task["lastStatus"] == "RUNNING"
    assert task["connectivity"] == "CONNECTED"
    for key in ("connectivityAt", "pullStartedAt", "pullStoppedAt", "startedAt", "createdAt"):
        assert key in task, key
    assert task["createdAt"] <= task["connectivityAt"] <= task["startedAt"]
    assert task["pullStartedAt"] <= task["pullStoppedAt"]
    eni = task["attachments"][0]
    assert eni["status"] == "ATTACHED"
    details = {d["name"]: d["value"] for d in eni["details"]}
    assert set(details) == {"subnetId", "networkInterfaceId", "macAddress", "privateDnsName",
                            "privateIPv4Address"}
    assert re.match(r"^eni-[0-9a-f]{17}$", details["networkInterfaceId"])
    ip = details["privateIPv4Address"]
    assert details["privateDnsName"] == f"ip-{ip.replace('.', '-')}.{REGION}.compute.internal"
    c = task["containers"][0]
    assert c["lastStatus"] == "RUNNING"
    assert c["networkInterfaces"] == [{"attachmentId": eni["id"], "privateIpv4Address": ip}]
    assert c["runtimeId"].startswith(TASK_ARN.match(arn).group(2))
    assert task["version"] >= 4
    assert "tags" not in task
    ecs_t.stop_task(cluster=cluster, task=arn)


def test_ecs_stop_task_reason_and_tasks_stopped_waiter(ecs_t, cluster):
    arn = run_one(ecs_t, cluster, "sleeper")
    wait_running(ecs_t, cluster, arn)
    out = ecs_t.stop_task(cluster=cluster, task=arn, reason="c12 test")["task"]
    assert out["desiredStatus"] == "STOPPED"
    assert out["stopCode"] == "UserInitiated"
    assert out["stoppedReason"] == "c12 test"
    assert "stoppingAt" in out
    wait_stopped(ecs_t, cluster, arn)
    task = describe(ecs_t, cluster, arn)
    assert (task["lastStatus"], task["desiredStatus"]) == ("STOPPED", "STOPPED")
    assert task["stoppedReason"] == "c12 test"
    assert task["startedAt"] <= task["stoppingAt"] <= task["executionStoppedAt"] <= task[
        "stoppedAt"]
    assert task["containers"][0]["lastStatus"] == "STOPPED"
    assert task["containers"][0]["exitCode"] == 143
    assert task["attachments"][0]["status"] == "DELETED"

    again = ecs_t.stop_task(cluster=cluster, task=arn, reason="second")["task"]
    assert again["stoppedReason"] == "c12 test"


def test_ecs_stop_task_without_reason_and_by_id(ecs_t, cluster):
    arn = run_one(ecs_t, cluster, "sleeper")
    task_id = arn.rsplit("/", 1)[1]
    out = ecs_t.stop_task(cluster=cluster, task=task_id)["task"]
    assert out["stoppedReason"] == "Task stopped by user"
    wait_stopped(ecs_t, cluster, arn)
    task = describe(ecs_t, cluster, task_id)
    assert task["lastStatus"] == "STOPPED"
    assert "startedAt" not in task or task["startedAt"] <= task["stoppedAt"]


def test_ecs_stop_task_of_unknown_task(ecs_t, cluster):
    code, message, _ = error_of(ecs_t.stop_task, cluster=cluster, task="0" * 32)
    assert (code, message) == ("InvalidParameterException", "The referenced task was not found")
    code, _, _ = error_of(ecs_t.stop_task, cluster="no-such-cluster", task="0" * 32)
    assert code == "ClusterNotFoundException"


def test_ecs_run_task_request_errors(ecs_t, cluster):
    code, _, status = error_of(run, ecs_t, cluster, "sleeper", count=11)
    assert (code, status) == ("InvalidParameterException", 400)
    code, message, _ = error_of(ecs_t.run_task, cluster=cluster, taskDefinition="sleeper",
                                launchType="FARGATE")
    assert (code, message) == (
        "InvalidParameterException",
        "Network Configuration must be provided when networkMode 'awsvpc' is specified.")
    code, message, _ = error_of(ecs_t.run_task, cluster=cluster, taskDefinition="sleeper",
                                networkConfiguration=NET)
    assert (code, message) == ("InvalidParameterException",
                               "No Container Instances were found in your cluster.")
    code, _, _ = error_of(run, ecs_t, cluster, "sleeper",
                          capacityProviderStrategy=[{"capacityProvider": "FARGATE"}])
    assert code == "InvalidParameterException"
    code, _, _ = error_of(run, ecs_t, "no-such-cluster", "sleeper")
    assert code == "ClusterNotFoundException"
    code, message, _ = error_of(run, ecs_t, cluster, "no-such-family")
    assert (code, message) == ("ClientException", "Unable to describe task definition.")
    code, _, _ = error_of(run, ecs_t, cluster, "sleeper", networkConfiguration={
        "awsvpcConfiguration": {"subnets": []}})
    assert code == "InvalidParameterException"
    code, _, _ = error_of(run, ecs_t, cluster, "sleeper", startedBy="x" * 129)
    assert code == "InvalidParameterException"


def test_ecs_run_task_rejects_ec2_only_definitions(ecs_t, cluster):
    ecs_t.register_task_definition(family="ec2-only", requiresCompatibilities=["EC2"],
                                   networkMode="bridge",
                                   containerDefinitions=[container(memory=128)])
    code, message, _ = error_of(ecs_t.run_task, cluster=cluster, taskDefinition="ec2-only",
                                launchType="FARGATE")
    assert (code, message) == ("InvalidParameterException",
                               "Task definition does not support launch_type FARGATE.")


def test_ecs_run_task_overrides(ecs_t, cluster):
    code, _, _ = error_of(run, ecs_t, cluster, "sleeper",
                          overrides={"containerOverrides": [{"name": "nope", "command": ["x"]}]})
    assert code == "InvalidParameterException"
    code, _, _ = error_of(run, ecs_t, cluster, "sleeper", overrides={"cpu": "512",
                                                                      "memory": "512"})
    assert code == "ClientException"

    overrides = {"cpu": "512", "memory": "1024",
                 "containerOverrides": [{"name": "app", "command": ["sleep", "1"],
                                         "environment": [{"name": "A", "value": "1"}]}]}
    arn = run_one(ecs_t, cluster, "sleeper", overrides=overrides)
    task = describe(ecs_t, cluster, arn)
    assert (task["cpu"], task["memory"]) == ("512", "1024")
    assert task["overrides"]["containerOverrides"] == overrides["containerOverrides"]
    # The overridden command makes the container exit after a second.
    wait_stopped(ecs_t, cluster, arn)
    task = describe(ecs_t, cluster, arn)
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["containers"][0]["exitCode"] == 0


def test_ecs_run_task_count_and_capacity_provider_strategy(ecs_t, cluster):
    out = ecs_t.run_task(cluster=cluster, taskDefinition="sleeper", count=3,
                         networkConfiguration=NET,
                         capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT",
                                                    "weight": 1}])
    assert out["failures"] == []
    assert len(out["tasks"]) == 3
    assert len({t["taskArn"] for t in out["tasks"]}) == 3
    for t in out["tasks"]:
        assert t["capacityProviderName"] == "FARGATE_SPOT"
        assert t["launchType"] == "FARGATE"
    # Spread across the two zones.
    assert {t["availabilityZone"] for t in out["tasks"]} == {"us-east-1a", "us-east-1b"}
    for t in out["tasks"]:
        ecs_t.stop_task(cluster=cluster, task=t["taskArn"])


def test_ecs_start_task_reports_container_instances_missing(ecs_t, cluster):
    out = ecs_t.start_task(cluster=cluster, taskDefinition="sleeper",
                           containerInstances=["0123456789abcdef0123456789abcdef"],
                           networkConfiguration=NET)
    assert out["tasks"] == []
    assert out["failures"] == [{
        "arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/{cluster}/"
               "0123456789abcdef0123456789abcdef",
        "reason": "MISSING"}]


def test_ecs_describe_tasks_c06_limits_and_missing(ecs_t, cluster):
    arn = run_one(ecs_t, cluster, "sleeper")
    code, message, status = error_of(ecs_t.describe_tasks, cluster=cluster,
                                     tasks=[f"{i:032x}" for i in range(101)])
    assert (code, message, status) == ("InvalidParameterException",
                                       "taskIds can have at most 100 items.", 400)
    code, _, _ = error_of(ecs_t.describe_tasks, cluster=cluster, tasks=[])
    assert code == "InvalidParameterException"

    missing = [f"{i:032x}" for i in range(99)]
    out = ecs_t.describe_tasks(cluster=cluster, tasks=[arn] + missing)
    assert [t["taskArn"] for t in out["tasks"]] == [arn]
    assert len(out["failures"]) == 99
    assert out["failures"][0] == {
        "arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster}/{missing[0]}", "reason": "MISSING"}
    code, _, _ = error_of(run, ecs_t, cluster, "sleeper", count=11)
    assert code == "InvalidParameterException"
    ecs_t.stop_task(cluster=cluster, task=arn)


def test_ecs_task_tags(ecs_t, cluster):
    arn = run_one(ecs_t, cluster, "sleeper", tags=[{"key": "a", "value": "1"}])
    assert describe(ecs_t, cluster, arn, include=["TAGS"])["tags"] == [{"key": "a", "value": "1"}]
    ecs_t.tag_resource(resourceArn=arn, tags=[{"key": "b", "value": "2"}])
    ecs_t.untag_resource(resourceArn=arn, tagKeys=["a"])
    assert ecs_t.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "b", "value": "2"}]
    short = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{arn.rsplit('/', 1)[1]}"
    code, _, _ = error_of(ecs_t.list_tags_for_resource, resourceArn=short)
    assert code == "InvalidParameterException"
    cluster_arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}"
    ecs_t.tag_resource(resourceArn=cluster_arn, tags=[{"key": "owner", "value": "me"}])
    assert {"key": "owner", "value": "me"} in ecs_t.list_tags_for_resource(
        resourceArn=cluster_arn)["tags"]
    code, _, _ = error_of(ecs_t.tag_resource,
                          resourceArn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/nope",
                          tags=[{"key": "k", "value": "v"}])
    assert code == "ClusterNotFoundException"
    ecs_t.stop_task(cluster=cluster, task=arn)


def test_ecs_run_task_propagates_task_definition_tags(ecs_t, cluster):
    register(ecs_t, "tagged-def", tags=[{"key": "from", "value": "td"}])
    arn = run_one(ecs_t, cluster, "tagged-def", propagateTags="TASK_DEFINITION",
                  tags=[{"key": "own", "value": "1"}])
    tags = describe(ecs_t, cluster, arn, include=["TAGS"])["tags"]
    assert sorted((t["key"], t["value"]) for t in tags) == [("from", "td"), ("own", "1")]
    ecs_t.stop_task(cluster=cluster, task=arn)


def test_ecs_list_tasks_c07_desired_status(ecs_t):
    ecs_t.create_cluster(clusterName="c07")
    register(ecs_t, "c07-sleep")
    register(ecs_t, "c07-true", containers=[container(command=["true"])])
    a = run_one(ecs_t, "c07", "c07-sleep")
    b = run_one(ecs_t, "c07", "c07-sleep")
    c = run_one(ecs_t, "c07", "c07-true")
    wait_running(ecs_t, "c07", a, b)
    ecs_t.stop_task(cluster="c07", task=b)
    wait_stopped(ecs_t, "c07", b, c)

    assert ecs_t.list_tasks(cluster="c07")["taskArns"] == [a]
    assert ecs_t.list_tasks(cluster="c07", desiredStatus="RUNNING")["taskArns"] == [a]
    assert sorted(ecs_t.list_tasks(cluster="c07", desiredStatus="STOPPED")["taskArns"]) == \
        sorted([b, c])
    assert ecs_t.list_tasks(cluster="c07", desiredStatus="PENDING")["taskArns"] == []
    task_c = describe(ecs_t, "c07", c)
    assert (task_c["desiredStatus"], task_c["stopCode"]) == ("STOPPED", "EssentialContainerExited")
    assert ecs_t.list_tasks(cluster="c07", family="c07-true", desiredStatus="STOPPED")[
        "taskArns"] == [c]
    assert ecs_t.list_tasks(cluster="c07", family="c07-true")["taskArns"] == []
    ecs_t.stop_task(cluster="c07", task=a)


def test_ecs_list_tasks_filters_and_pagination(ecs_t):
    ecs_t.create_cluster(clusterName="paging")
    register(ecs_t, "pg")
    mine = [run_one(ecs_t, "paging", "pg", startedBy="me") for _ in range(5)]
    other = run_one(ecs_t, "paging", "pg", startedBy="someone-else")

    assert sorted(ecs_t.list_tasks(cluster="paging", startedBy="me")["taskArns"]) == sorted(mine)
    assert ecs_t.list_tasks(cluster="paging", launchType="FARGATE", startedBy="someone-else")[
        "taskArns"] == [other]
    assert ecs_t.list_tasks(cluster="paging", launchType="EC2")["taskArns"] == []

    pages, token = [], None
    while True:
        kwargs = {"cluster": "paging", "maxResults": 2}
        if token:
            kwargs["nextToken"] = token
        page = ecs_t.list_tasks(**kwargs)
        assert 1 <= len(page["taskArns"]) <= 2
        pages.append(page["taskArns"])
        token = page.get("nextToken")
        if not token:
            break
    assert len(pages) == 3
    assert sorted(a for p in pages for a in p) == sorted(mine + [other])
    via_paginator = [a for p in ecs_t.get_paginator("list_tasks").paginate(
        cluster="paging", PaginationConfig={"PageSize": 4}) for a in p["taskArns"]]
    assert sorted(via_paginator) == sorted(mine + [other])

    code, _, _ = error_of(ecs_t.list_tasks, cluster="paging", maxResults=101)
    assert code == "InvalidParameterException"
    code, _, _ = error_of(ecs_t.list_tasks, cluster="nope")
    assert code == "ClusterNotFoundException"
    for arn in mine + [other]:
        ecs_t.stop_task(cluster="paging", task=arn)


def test_ecs_c11_essential_container_exit_stops_the_task(ecs_t, cluster):
    register(ecs_t, "c11", containers=[
        container("app", ["sh", "-c", "sleep 1; exit 3"]),
        container("sidecar", ["sleep", "3600"], essential=False)])
    arn = run_one(ecs_t, cluster, "c11")
    wait_stopped(ecs_t, cluster, arn)
    task = describe(ecs_t, cluster, arn)
    assert (task["lastStatus"], task["desiredStatus"]) == ("STOPPED", "STOPPED")
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["stoppedReason"] == "Essential container in task exited"
    by_name = {c["name"]: c for c in task["containers"]}
    assert by_name["app"]["exitCode"] == 3
    assert by_name["sidecar"]["lastStatus"] == "STOPPED"
    assert by_name["sidecar"]["exitCode"] in (0, 143)
    assert "stoppedAt" in task and "executionStoppedAt" in task


def test_ecs_c11_non_essential_exit_keeps_the_task_running(ecs_t, cluster):
    register(ecs_t, "c11-inverse", containers=[
        container("app", ["sleep", "3600"]),
        container("sidecar", ["sleep", "1"], essential=False)])
    arn = run_one(ecs_t, cluster, "c11-inverse")
    wait_running(ecs_t, cluster, arn)

    def sidecar_done():
        t = describe(ecs_t, cluster, arn)
        side = next(c for c in t["containers"] if c["name"] == "sidecar")
        return t if side["lastStatus"] == "STOPPED" else None

    task = wait_for(sidecar_done, what="sidecar exit")
    time.sleep(1)
    task = describe(ecs_t, cluster, arn)
    assert (task["lastStatus"], task["desiredStatus"]) == ("RUNNING", "RUNNING")
    side = next(c for c in task["containers"] if c["name"] == "sidecar")
    assert side["exitCode"] == 0
    ecs_t.stop_task(cluster=cluster, task=arn)


def test_ecs_task_that_fails_to_start(ecs_t, cluster):
    reason = ("CannotPullContainerError: pull image manifest has been retried 1 time(s): "
              "failed to resolve ref docker.io/library/my-ecr-repo:latest")
    register(ecs_t, "pull-fails", containers=[container(
        dockerLabels={"berth.fake-agent/fail-start": reason})])
    arn = run_one(ecs_t, cluster, "pull-fails")
    with pytest.raises(botocore.exceptions.WaiterError):
        wait_running(ecs_t, cluster, arn)
    wait_stopped(ecs_t, cluster, arn)
    task = describe(ecs_t, cluster, arn)
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"] == reason
    assert task["containers"][0]["reason"] == reason
    assert "startedAt" not in task
    assert "exitCode" not in task["containers"][0]


def test_ecs_container_health_status(ecs_t, cluster):
    check = {"command": ["CMD-SHELL", "true"], "interval": 5, "timeout": 2, "retries": 1}
    register(ecs_t, "healthy", containers=[container(healthCheck=check)])
    register(ecs_t, "unhealthy", containers=[container(
        healthCheck=check, dockerLabels={"berth.fake-agent/health": "UNHEALTHY"})])
    register(ecs_t, "unchecked")
    good = run_one(ecs_t, cluster, "healthy")
    bad = run_one(ecs_t, cluster, "unhealthy")
    none = run_one(ecs_t, cluster, "unchecked")
    wait_running(ecs_t, cluster, good, bad, none)
    assert describe(ecs_t, cluster, good)["healthStatus"] == "HEALTHY"
    assert describe(ecs_t, cluster, bad)["healthStatus"] == "UNHEALTHY"
    assert describe(ecs_t, cluster, bad)["containers"][0]["healthStatus"] == "UNHEALTHY"
    assert describe(ecs_t, cluster, none)["healthStatus"] == "UNKNOWN"
    # A standalone task is not replaced or stopped for being unhealthy.
    assert describe(ecs_t, cluster, bad)["lastStatus"] == "RUNNING"
    for arn in (good, bad, none):
        ecs_t.stop_task(cluster=cluster, task=arn)


def test_ecs_cluster_counters_and_delete_with_tasks(berthd_factory):
    b = berthd_factory("ecs-counters", extra_args=["--no-agent"])
    agent = FakeAgent(b, step=0.6).start()
    try:
        ecs = b.client("ecs")
        ecs.create_cluster(clusterName="counted")
        register(ecs, "counted")
        a = run_one(ecs, "counted", "counted")
        c = ecs.describe_clusters(clusters=["counted"])["clusters"][0]
        assert (c["pendingTasksCount"], c["runningTasksCount"]) == (1, 0)
        b2 = run_one(ecs, "counted", "counted")
        wait_running(ecs, "counted", a, b2)
        c = ecs.describe_clusters(clusters=["counted"])["clusters"][0]
        assert (c["pendingTasksCount"], c["runningTasksCount"]) == (0, 2)

        code, _, _ = error_of(ecs.delete_cluster, cluster="counted")
        assert code == "ClusterContainsTasksException"
        ecs.stop_task(cluster="counted", task=a)
        wait_stopped(ecs, "counted", a)
        c = ecs.describe_clusters(clusters=["counted"])["clusters"][0]
        assert (c["pendingTasksCount"], c["runningTasksCount"]) == (0, 1)
        ecs.stop_task(cluster="counted", task=b2)
        wait_stopped(ecs, "counted", b2)
        assert ecs.delete_cluster(cluster="counted")["cluster"]["status"] == "INACTIVE"
        code, _, _ = error_of(run, ecs, "counted", "counted")
        assert code == "ClusterNotFoundException"
    finally:
        agent.stop()


def test_ecs_resource_failures_on_a_small_node(berthd_factory):
    b = berthd_factory("ecs-small", extra_args=["--no-agent"])
    agent = FakeAgent(b, cpu=512, memory=1024).start()
    try:
        ecs = b.client("ecs")
        ecs.create_cluster(clusterName="small")
        register(ecs, "quarter")
        register(ecs, "memory-hungry", cpu="256", memory="2048")
        register(ecs, "cpu-hungry", cpu="1024", memory="2048")
        out = run(ecs, "small", "memory-hungry")
        assert out["tasks"] == [] and out["failures"] == [{"reason": "RESOURCE:MEMORY"}]
        out = run(ecs, "small", "cpu-hungry")
        assert out["tasks"] == [] and out["failures"] == [{"reason": "RESOURCE:CPU"}]

        out = run(ecs, "small", "quarter", count=3)
        assert len(out["tasks"]) == 2
        assert out["failures"] == [{"reason": "RESOURCE:CPU"}]
        # A stopped task gives its reservation back.
        first = out["tasks"][0]["taskArn"]
        ecs.stop_task(cluster="small", task=first)
        wait_stopped(ecs, "small", first)
        assert len(run(ecs, "small", "quarter")["tasks"]) == 1
        assert run(ecs, "small", "quarter")["failures"] == [{"reason": "RESOURCE:CPU"}]
    finally:
        agent.stop()


def test_ecs_allocation_factor_limits_what_a_node_offers(berthd_factory):
    b = berthd_factory("ecs-factor", extra_args=["--no-agent", "--allocation-factor", "0.5"])
    agent = FakeAgent(b, cpu=1024, memory=2048).start()
    try:
        ecs = b.client("ecs")
        ecs.create_cluster(clusterName="half")
        register(ecs, "quarter")
        out = run(ecs, "half", "quarter", count=3)
        assert len(out["tasks"]) == 2 and out["failures"] == [{"reason": "RESOURCE:CPU"}]
    finally:
        agent.stop()


def test_ecs_no_double_booking_under_concurrent_run_task(berthd_factory):
    b = berthd_factory("ecs-race", extra_args=["--no-agent"])
    agent = FakeAgent(b, cpu=1024, memory=2048).start()
    try:
        setup = b.client("ecs")
        setup.create_cluster(clusterName="race")
        register(setup, "quarter")
        clients = [b.client("ecs") for _ in range(20)]

        def one(client):
            return run(client, "race", "quarter")

        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            results = list(pool.map(one, clients))
        placed = [t["taskArn"] for r in results for t in r["tasks"]]
        failures = [f["reason"] for r in results for f in r["failures"]]
        assert len(placed) == 4 and len(set(placed)) == 4
        assert failures == ["RESOURCE:CPU"] * 16
        wait_running(setup, "race", *placed)
        listed = setup.list_tasks(cluster="race")["taskArns"]
        assert sorted(listed) == sorted(placed)
    finally:
        agent.stop()


def test_ecs_lost_node_stops_its_tasks(berthd_factory):
    b = berthd_factory("ecs-lost", extra_args=["--no-agent", "--node-timeout", "2"])
    agent = FakeAgent(b).start()
    ecs = b.client("ecs")
    ecs.create_cluster(clusterName="lost")
    register(ecs, "lost")
    arn = run_one(ecs, "lost", "lost")
    wait_running(ecs, "lost", arn)
    agent.lose()
    wait_stopped(ecs, "lost", arn)
    task = describe(ecs, "lost", arn)
    assert task["stopCode"] == "TerminationNotice"
    assert agent.node_id in task["stoppedReason"]
    # With its only node gone, nothing can be placed; a new node takes new tasks.
    assert run(ecs, "lost", "lost")["failures"] == [{"reason": "RESOURCE:CPU"}]
    replacement = FakeAgent(b).start()
    try:
        arn2 = run_one(ecs, "lost", "lost")
        wait_running(ecs, "lost", arn2)
    finally:
        replacement.stop()


def test_ecs_tasks_survive_kill_9_and_restart(berthd_factory):
    b = berthd_factory("ecs-restart", extra_args=["--no-agent"])
    agent = FakeAgent(b).start()
    try:
        ecs = b.client("ecs")
        ecs.create_cluster(clusterName="durable")
        register(ecs, "durable")
        arn = run_one(ecs, "durable", "durable", tags=[{"key": "k", "value": "v"}])
        done = run_one(ecs, "durable", "durable")
        wait_running(ecs, "durable", arn, done)
        ecs.stop_task(cluster="durable", task=done, reason="before restart")
        wait_stopped(ecs, "durable", done)

        b.kill9()
        b.start()
        ecs = b.client("ecs")
        task = describe(ecs, "durable", arn, include=["TAGS"])
        assert (task["lastStatus"], task["desiredStatus"]) == ("RUNNING", "RUNNING")
        assert task["tags"] == [{"key": "k", "value": "v"}]
        stopped = describe(ecs, "durable", done)
        assert (stopped["lastStatus"], stopped["stoppedReason"]) == ("STOPPED", "before restart")
        assert ecs.list_tasks(cluster="durable")["taskArns"] == [arn]
        assert ecs.describe_clusters(clusters=["durable"])["clusters"][0][
            "runningTasksCount"] == 1

        # The agent reconnects on its own and still drives the task.
        ecs.stop_task(cluster="durable", task=arn)
        wait_stopped(ecs, "durable", arn)
        assert describe(ecs, "durable", arn)["containers"][0]["exitCode"] == 143
    finally:
        agent.stop()


def test_ecs_agent_endpoints_need_the_node_token(plane):
    req = urllib.request.Request(plane.endpoint + "/_berth/agent/register", method="POST",
                                 data=json.dumps({"nodeId": "x", "cpu": 1, "memory": 1}).encode())
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 401
    req.add_header("Authorization", "Bearer wrong")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 401
