"""ECS services against a live berthd: the API, deployments, the controller.

Tasks run on FakeAgent nodes (a test double of the node agent that plays the
task lifecycle on timers), so failures can be injected: a task that fails to
start, a container that crashes, a health check that fails.
"""
import datetime
import re
import time
import uuid

import botocore.exceptions
import pytest

from conftest import ACCOUNT, REGION
from fake_agent import FakeAgent, wait_for

FAST_WAIT = {"Delay": 1, "MaxAttempts": 90}
NETWORK = {"awsvpcConfiguration": {"subnets": ["subnet-0a1b2c3d"],
                                   "securityGroups": ["sg-0a1b2c3d"]}}
DEPLOYMENT_ID = re.compile(r"^ecs-svc/[1-9][0-9]{18}$")


# -- fixtures and helpers ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def agent(berthd):
    a = FakeAgent(berthd, cpu=32768, memory=131072).start()
    yield a
    a.stop()


@pytest.fixture
def cluster(ecs, agent):
    name = "svc-" + uuid.uuid4().hex[:10]
    ecs.create_cluster(clusterName=name)
    return name


def register(ecs, family, labels=None, health=False, cpu="256", memory="512", **extra):
    container = {"name": "app", "image": "nginx:latest", "essential": True,
                 "portMappings": [{"containerPort": 80}]}
    if labels:
        container["dockerLabels"] = labels
    if health:
        container["healthCheck"] = {"command": ["CMD-SHELL", "true"], "interval": 5,
                                    "retries": 1}
    return ecs.register_task_definition(
        family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu=cpu,
        memory=memory, containerDefinitions=[container], **extra,
    )["taskDefinition"]["taskDefinitionArn"]


def create(ecs, cluster, name, td, desired=2, **extra):
    args = dict(cluster=cluster, serviceName=name, taskDefinition=td, desiredCount=desired,
                launchType="FARGATE", networkConfiguration=NETWORK)
    args.update(extra)
    return ecs.create_service(**args)["service"]


def describe(ecs, cluster, name):
    return ecs.describe_services(cluster=cluster, services=[name])["services"][0]


def stable(ecs, cluster, *names):
    try:
        ecs.get_waiter("services_stable").wait(cluster=cluster, services=list(names),
                                              WaiterConfig=FAST_WAIT)
    except botocore.exceptions.WaiterError:
        state = ecs.describe_services(cluster=cluster, services=list(names))
        tasks = {n: [(t["taskArn"][-8:], t["lastStatus"], t["desiredStatus"], t.get("startedBy"))
                     for t in running_tasks(ecs, cluster, n)] for n in names}
        raise AssertionError(f"not stable: {state['services']} tasks: {tasks}") from None
    return describe(ecs, cluster, names[0])


def messages(service):
    return [e["message"] for e in service["events"]]


def running_tasks(ecs, cluster, name):
    arns = ecs.list_tasks(cluster=cluster, serviceName=name)["taskArns"]
    if not arns:
        return []
    return ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]


def task_id(arn):
    return arn.rsplit("/", 1)[1]


def error_of(call, *args, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(*args, **kwargs)
    return (e.value.response["Error"]["Code"], e.value.response["Error"]["Message"],
            e.value.response["ResponseMetadata"]["HTTPStatusCode"])


def crash(agents, arn, code=137):
    """Makes the task's essential container exit, as if its process was killed."""
    tid = task_id(arn)
    for a in agents:
        task = a.tasks.get(tid)
        if task is not None:
            task.containers[0]["exit_code"] = code
            task.containers[0]["exit_after"] = 0.0
            return
    raise AssertionError(f"no agent runs task {tid}")


# -- CreateService ----------------------------------------------------------------------------

def test_ecs_create_service_answers_like_aws_and_reaches_steady_state(ecs, cluster):
    td = register(ecs, "svc-web")
    svc = create(ecs, cluster, "web", td, desired=2)

    assert svc["serviceArn"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/web"
    assert svc["clusterArn"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}"
    assert svc["status"] == "ACTIVE"
    assert svc["desiredCount"] == 2
    assert svc["runningCount"] == 0 and svc["pendingCount"] == 0
    assert svc["launchType"] == "FARGATE"
    assert svc["platformVersion"] == "LATEST"
    assert svc["taskDefinition"] == td
    assert svc["schedulingStrategy"] == "REPLICA"
    assert svc["deploymentController"] == {"type": "ECS"}
    assert svc["propagateTags"] == "NONE"
    assert svc["enableECSManagedTags"] is False
    assert svc["deploymentConfiguration"] == {
        "deploymentCircuitBreaker": {"enable": False, "rollback": False},
        "maximumPercent": 200, "minimumHealthyPercent": 100}
    assert svc["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"
    assert isinstance(svc["createdAt"], datetime.datetime)
    [d] = svc["deployments"]
    assert DEPLOYMENT_ID.match(d["id"])
    assert d["status"] == "PRIMARY"
    assert d["taskDefinition"] == td
    assert d["desiredCount"] == 2
    assert d["rolloutState"] == "IN_PROGRESS"
    assert d["rolloutStateReason"] == f"ECS deployment {d['id']} in progress."
    assert d["launchType"] == "FARGATE"
    assert d["platformVersion"] == "1.4.0"
    assert d["platformFamily"] == "Linux"
    assert d["failedTasks"] == 0

    svc = stable(ecs, cluster, "web")
    assert svc["runningCount"] == 2 and svc["pendingCount"] == 0
    [d2] = svc["deployments"]
    assert d2["id"] == d["id"]
    assert d2["rolloutState"] == "COMPLETED"
    assert d2["rolloutStateReason"] == f"ECS deployment {d['id']} completed."
    assert d2["runningCount"] == 2
    tasks = running_tasks(ecs, cluster, "web")
    assert len(tasks) == 2
    ids = sorted(task_id(t["taskArn"]) for t in tasks)
    for t in tasks:
        assert t["group"] == "service:web"
        assert t["startedBy"] == d["id"]
        assert t["lastStatus"] == "RUNNING"
    msgs = messages(svc)
    assert msgs[0] == "(service web) has reached a steady state."
    assert msgs[1] == f"(service web) (deployment {d['id']}) deployment completed."
    started = [m for m in msgs if "has started" in m]
    assert len(started) == 1
    assert started[0].startswith("(service web) has started 2 tasks: (task ")
    assert sorted(re.findall(r"\(task ([0-9a-f]{32})\)", started[0])) == ids
    # Events are newest first, with ids and timestamps.
    times = [e["createdAt"] for e in svc["events"]]
    assert times == sorted(times, reverse=True)
    assert all(re.match(r"^[0-9a-f-]{36}$", e["id"]) for e in svc["events"])

    c = ecs.describe_clusters(clusters=[cluster])["clusters"][0]
    assert c["activeServicesCount"] == 1
    assert c["runningTasksCount"] == 2


def test_ecs_create_service_errors(ecs, cluster):
    td = register(ecs, "svc-err")

    code, msg, status = error_of(ecs.create_service, cluster=cluster, serviceName="a",
                                 taskDefinition=td, desiredCount=1, launchType="FARGATE")
    assert (code, status) == ("InvalidParameterException", 400)
    assert msg == "Network Configuration must be provided when networkMode 'awsvpc' is specified."

    code, msg, _ = error_of(ecs.create_service, cluster=cluster, serviceName="a",
                            taskDefinition=td, launchType="FARGATE",
                            capacityProviderStrategy=[{"capacityProvider": "FARGATE"}],
                            networkConfiguration=NETWORK)
    assert code == "InvalidParameterException"
    assert msg == ("Specifying both a launch type and capacity provider strategy is not "
                   "supported. Remove one and try again.")

    code, msg, _ = error_of(ecs.create_service, cluster="no-such-cluster", serviceName="a",
                            taskDefinition=td, launchType="FARGATE",
                            networkConfiguration=NETWORK)
    assert (code, msg) == ("ClusterNotFoundException", "Cluster not found.")

    code, msg, _ = error_of(ecs.create_service, cluster=cluster, serviceName="a",
                            launchType="FARGATE", networkConfiguration=NETWORK)
    assert (code, msg) == ("InvalidParameterException", "TaskDefinition can not be blank.")

    code, _, _ = error_of(ecs.create_service, cluster=cluster, serviceName="a",
                          taskDefinition="svc-err:99", launchType="FARGATE",
                          networkConfiguration=NETWORK)
    assert code == "ClientException"

    old = register(ecs, "svc-err-old")
    ecs.deregister_task_definition(taskDefinition=old)
    code, msg, _ = error_of(ecs.create_service, cluster=cluster, serviceName="a",
                            taskDefinition=old, launchType="FARGATE",
                            networkConfiguration=NETWORK)
    assert (code, msg) == ("InvalidParameterException", "TaskDefinition is inactive")

    code, msg, _ = error_of(ecs.create_service, cluster=cluster, serviceName="a",
                            taskDefinition=td, launchType="FARGATE",
                            networkConfiguration=NETWORK,
                            placementConstraints=[{"type": "distinctInstance"}])
    assert msg == "Placement constraints are not supported with FARGATE launch type."
    code, msg, _ = error_of(ecs.create_service, cluster=cluster, serviceName="a",
                            taskDefinition=td, launchType="FARGATE",
                            networkConfiguration=NETWORK,
                            placementStrategy=[{"type": "random"}])
    assert msg == "Placement strategies are not supported with FARGATE launch type."

    code, msg, _ = error_of(ecs.create_service, cluster=cluster, serviceName="a",
                            taskDefinition=td,
                            capacityProviderStrategy=[{"capacityProvider": "FARGATE"}],
                            networkConfiguration=NETWORK)
    assert code == "InvalidParameterException"
    assert msg.startswith("The specified capacity provider strategy cannot contain a capacity "
                          "provider that is not associated with the cluster.")

    code, msg, _ = error_of(ecs.create_service, cluster=cluster, serviceName="bad name!",
                            taskDefinition=td, launchType="FARGATE",
                            networkConfiguration=NETWORK)
    assert code == "InvalidParameterException"

    code, msg, _ = error_of(
        ecs.create_service, cluster=cluster, serviceName="a", taskDefinition=td,
        launchType="FARGATE", networkConfiguration=NETWORK,
        loadBalancers=[{"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:"
                        f"{ACCOUNT}:targetgroup/tg/0123456789abcdef",
                        "containerName": "web", "containerPort": 80}])
    assert (code, msg) == ("InvalidParameterException",
                           "The container web does not exist in the task definition.")
    code, msg, _ = error_of(
        ecs.create_service, cluster=cluster, serviceName="a", taskDefinition=td,
        launchType="FARGATE", networkConfiguration=NETWORK,
        loadBalancers=[{"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:"
                        f"{ACCOUNT}:targetgroup/tg/0123456789abcdef",
                        "containerName": "app", "containerPort": 8080}])
    assert msg == "The container app did not have a container port 8080 defined."

    code, _, _ = error_of(ecs.create_service, cluster=cluster, serviceName="a",
                          taskDefinition=td, launchType="FARGATE", networkConfiguration=NETWORK,
                          deploymentConfiguration={"minimumHealthyPercent": 150})
    assert code == "InvalidParameterException"

    # None of the refused calls left a service behind.
    assert ecs.list_services(cluster=cluster)["serviceArns"] == []


def test_ecs_create_service_with_capacity_provider_strategy(ecs, agent):
    name = "svc-cp-" + uuid.uuid4().hex[:8]
    ecs.create_cluster(
        clusterName=name, capacityProviders=["FARGATE", "FARGATE_SPOT"],
        defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}])
    td = register(ecs, "svc-cp")
    # No launch type: the cluster's default strategy applies.
    svc = ecs.create_service(cluster=name, serviceName="cp", taskDefinition=td,
                             desiredCount=1, networkConfiguration=NETWORK)["service"]
    assert "launchType" not in svc
    assert svc["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE", "weight": 1,
                                                "base": 0}]
    assert svc["deployments"][0]["capacityProviderStrategy"] == svc["capacityProviderStrategy"]
    spot = ecs.create_service(
        cluster=name, serviceName="spot", taskDefinition=td, desiredCount=1,
        networkConfiguration=NETWORK,
        capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "base": 1}])["service"]
    assert spot["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT",
                                                 "weight": 0, "base": 1}]
    stable(ecs, name, "cp", "spot")
    [t] = running_tasks(ecs, name, "cp")
    assert t["launchType"] == "FARGATE"
    [t] = running_tasks(ecs, name, "spot")
    assert t.get("capacityProviderName") == "FARGATE_SPOT"


def test_ecs_create_service_is_idempotent_only_for_the_same_request(ecs, cluster):
    td = register(ecs, "svc-idem")
    first = create(ecs, cluster, "idem", td, desired=0, clientToken="token-1")
    again = create(ecs, cluster, "idem", td, desired=0, clientToken="token-1")
    assert again["deployments"][0]["id"] == first["deployments"][0]["id"]
    assert again["createdAt"] == first["createdAt"]

    code, msg, _ = error_of(create, ecs, cluster, "idem", td, desired=3)
    assert (code, msg) == ("InvalidParameterException", "Creation of service was not idempotent.")
    code, msg, _ = error_of(create, ecs, cluster, "idem", td, desired=0, clientToken="token-2")
    assert msg == "Creation of service was not idempotent."


# -- DescribeServices / ListServices ----------------------------------------------------------

def test_ecs_describe_services_missing_limits_and_tags(ecs, cluster):
    td = register(ecs, "svc-desc")
    create(ecs, cluster, "d1", td, desired=0, tags=[{"key": "team", "value": "blue"}])
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/d1"

    out = ecs.describe_services(cluster=cluster, services=["d1", "nope"])
    assert [s["serviceName"] for s in out["services"]] == ["d1"]
    assert "tags" not in out["services"][0]
    assert out["failures"] == [{"arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/nope",
                                "reason": "MISSING"}]

    by_arn = ecs.describe_services(cluster=cluster, services=[arn], include=["TAGS"])
    assert by_arn["services"][0]["serviceArn"] == arn
    assert by_arn["services"][0]["tags"] == [{"key": "team", "value": "blue"}]

    code, msg, status = error_of(ecs.describe_services, cluster=cluster,
                                 services=[f"s{i}" for i in range(11)])
    assert (code, msg, status) == ("InvalidParameterException",
                                   "service names can have at most 10 items.", 400)

    code, msg, _ = error_of(ecs.describe_services, cluster="no-such-cluster", services=["d1"])
    assert code == "ClusterNotFoundException"


def test_ecs_list_services_pages_and_filters(ecs, cluster):
    td = register(ecs, "svc-list")
    names = [f"l{i:02d}" for i in range(12)]
    for n in names:
        create(ecs, cluster, n, td, desired=0)

    first = ecs.list_services(cluster=cluster)
    assert len(first["serviceArns"]) == 10  # the default page size
    assert "nextToken" in first
    rest = ecs.list_services(cluster=cluster, nextToken=first["nextToken"])
    assert "nextToken" not in rest
    got = [a.rsplit("/", 1)[1] for a in first["serviceArns"] + rest["serviceArns"]]
    assert got == names

    paginator = ecs.get_paginator("list_services")
    pages = list(paginator.paginate(cluster=cluster, PaginationConfig={"PageSize": 5}))
    assert [len(p["serviceArns"]) for p in pages] == [5, 5, 2]

    assert len(ecs.list_services(cluster=cluster, launchType="FARGATE")["serviceArns"]) == 10
    assert ecs.list_services(cluster=cluster, launchType="EC2")["serviceArns"] == []
    assert len(ecs.list_services(cluster=cluster, schedulingStrategy="REPLICA",
                                 maxResults=100)["serviceArns"]) == 12
    code, _, _ = error_of(ecs.list_services, cluster=cluster, maxResults=101)
    assert code == "InvalidParameterException"
    code, _, _ = error_of(ecs.list_services, cluster="no-such-cluster")
    assert code == "ClusterNotFoundException"


def test_ecs_list_services_by_namespace_is_empty_without_cloud_map(ecs, cluster):
    out = ecs.list_services_by_namespace(namespace="example.local")
    assert out["serviceArns"] == []


# -- UpdateService ----------------------------------------------------------------------------

def test_ecs_update_service_force_new_deployment_replaces_tasks(ecs, cluster):
    """C09: forceNewDeployment with an unchanged task definition."""
    td = register(ecs, "svc-c09")
    create(ecs, cluster, "svc", td, desired=2,
           deploymentConfiguration={"maximumPercent": 200, "minimumHealthyPercent": 100})
    before = stable(ecs, cluster, "svc")
    old_id = before["deployments"][0]["id"]
    old_tasks = sorted(t["taskArn"] for t in running_tasks(ecs, cluster, "svc"))
    assert len(old_tasks) == 2

    called = datetime.datetime.now(datetime.timezone.utc)
    updated = ecs.update_service(cluster=cluster, service="svc",
                                 forceNewDeployment=True)["service"]
    deps = updated["deployments"]
    assert len(deps) == 2
    new = deps[0]
    assert new["status"] == "PRIMARY" and DEPLOYMENT_ID.match(new["id"])
    assert new["id"] != old_id
    assert new["taskDefinition"] == td
    assert new["rolloutState"] == "IN_PROGRESS"
    assert abs((new["createdAt"] - called).total_seconds()) < 5
    assert abs((new["updatedAt"] - called).total_seconds()) < 5
    assert deps[1]["id"] == old_id and deps[1]["status"] == "ACTIVE"

    # A following describe shows the same new deployment.
    again = describe(ecs, cluster, "svc")
    primary = [d for d in again["deployments"] if d["status"] == "PRIMARY"][0]
    assert primary["id"] == new["id"] and primary["createdAt"] == new["createdAt"]

    after = stable(ecs, cluster, "svc")
    [d] = after["deployments"]
    assert d["id"] == new["id"] and d["rolloutState"] == "COMPLETED"
    current = running_tasks(ecs, cluster, "svc")
    assert len(current) == 2
    assert all(t["startedBy"] == new["id"] for t in current)
    assert not set(t["taskArn"] for t in current) & set(old_tasks)

    replaced = ecs.describe_tasks(cluster=cluster, tasks=old_tasks)["tasks"]
    for t in replaced:
        assert t["lastStatus"] == "STOPPED"
        assert t["stopCode"] == "ServiceSchedulerInitiated"
        assert t["stoppedReason"] == f"Scaling activity initiated by (deployment {new['id']})"
    msgs = messages(after)
    assert msgs[0] == "(service svc) has reached a steady state."
    assert msgs[1] == f"(service svc) (deployment {new['id']}) deployment completed."
    # Old tasks go as new ones turn healthy: in one event or in two.
    stops = [m for m in msgs if re.match(r"^\(service svc\) has stopped [12] running tasks: ", m)]
    assert sorted(i for m in stops for i in re.findall(r"\(task ([0-9a-f]{32})\)", m)) == \
        sorted(task_id(a) for a in old_tasks)


def test_ecs_update_service_task_definition_and_desired_count(ecs, cluster):
    v1 = register(ecs, "svc-upd")
    v2 = register(ecs, "svc-upd")
    create(ecs, cluster, "upd", v1, desired=1)
    first = stable(ecs, cluster, "upd")["deployments"][0]["id"]

    # desiredCount alone keeps the deployment.
    svc = ecs.update_service(cluster=cluster, service="upd", desiredCount=3)["service"]
    assert [d["id"] for d in svc["deployments"]] == [first]
    assert svc["deployments"][0]["desiredCount"] == 3
    svc = stable(ecs, cluster, "upd")
    assert svc["runningCount"] == 3 and svc["deployments"][0]["id"] == first

    svc = ecs.update_service(cluster=cluster, service="upd", taskDefinition=v2,
                             desiredCount=2)["service"]
    assert svc["taskDefinition"] == v2
    assert svc["deployments"][0]["taskDefinition"] == v2
    assert svc["deployments"][1]["taskDefinition"] == v1
    svc = stable(ecs, cluster, "upd")
    assert svc["runningCount"] == 2
    assert svc["deployments"][0]["taskDefinition"] == v2
    tasks = running_tasks(ecs, cluster, "upd")
    assert sorted(t["taskDefinitionArn"] for t in tasks) == [v2, v2]

    # Same task definition again: no new deployment.
    svc = ecs.update_service(cluster=cluster, service="upd", taskDefinition=v2)["service"]
    assert len(svc["deployments"]) == 1


def test_ecs_update_service_errors(ecs, cluster):
    td = register(ecs, "svc-upd-err")
    code, msg, _ = error_of(ecs.update_service, cluster=cluster, service="nope", desiredCount=1)
    assert (code, msg) == ("ServiceNotFoundException", "Service not found.")
    code, _, _ = error_of(ecs.update_service, cluster="no-such-cluster", service="x",
                          desiredCount=1)
    assert code == "ClusterNotFoundException"

    create(ecs, cluster, "ue", td, desired=0)
    code, _, _ = error_of(ecs.update_service, cluster=cluster, service="ue",
                          deploymentConfiguration={"maximumPercent": 50})
    assert code == "InvalidParameterException"
    code, msg, _ = error_of(ecs.update_service, cluster=cluster, service="ue",
                            placementStrategy=[{"type": "binpack", "field": "memory"}])
    assert msg == "Placement strategies are not supported with FARGATE launch type."

    ecs.delete_service(cluster=cluster, service="ue")
    code, msg, _ = error_of(ecs.update_service, cluster=cluster, service="ue", desiredCount=1)
    assert (code, msg) == ("ServiceNotActiveException", "Service was not ACTIVE.")


# -- DeleteService ----------------------------------------------------------------------------

def test_ecs_delete_service_refuses_while_scaled_above_zero(ecs, cluster):
    td = register(ecs, "svc-del")
    create(ecs, cluster, "del", td, desired=1)
    stable(ecs, cluster, "del")

    code, msg, status = error_of(ecs.delete_service, cluster=cluster, service="del")
    assert (code, msg, status) == ("InvalidParameterException",
                                   "The service cannot be stopped while it is scaled above 0.",
                                   400)
    code, msg, _ = error_of(ecs.delete_cluster, cluster=cluster)
    assert code == "ClusterContainsServicesException"

    out = ecs.delete_service(cluster=cluster, service="del", force=True)["service"]
    assert out["status"] == "DRAINING"
    assert out["desiredCount"] == 0
    ecs.get_waiter("services_inactive").wait(cluster=cluster, services=["del"],
                                             WaiterConfig=FAST_WAIT)
    svc = describe(ecs, cluster, "del")
    assert svc["status"] == "INACTIVE" and svc["runningCount"] == 0
    stopped = ecs.list_tasks(cluster=cluster, serviceName="del",
                             desiredStatus="STOPPED")["taskArns"]
    assert len(stopped) == 1
    assert ecs.list_tasks(cluster=cluster, serviceName="del")["taskArns"] == []
    assert ecs.list_services(cluster=cluster)["serviceArns"] == []

    # Deleting it again answers with it; a new one may take the name.
    assert ecs.delete_service(cluster=cluster, service="del")["service"]["status"] == "INACTIVE"
    code, _, _ = error_of(ecs.delete_service, cluster=cluster, service="never")
    assert code == "ServiceNotFoundException"
    fresh = create(ecs, cluster, "del", td, desired=0)
    assert fresh["status"] == "ACTIVE"
    ecs.delete_service(cluster=cluster, service="del")
    ecs.get_waiter("services_inactive").wait(cluster=cluster, services=["del"],
                                             WaiterConfig=FAST_WAIT)
    assert ecs.delete_cluster(cluster=cluster)["cluster"]["status"] == "INACTIVE"


def test_ecs_draining_service_blocks_recreation_and_cluster_deletion(berthd_factory):
    b = berthd_factory("svc-draining")
    ecs = b.client("ecs")
    a = FakeAgent(b, node_id="drain-node").start()
    try:
        ecs.create_cluster(clusterName="dr")
        td = register(ecs, "svc-dr")
        create(ecs, "dr", "s", td, desired=1)
        stable(ecs, "dr", "s")
        a.stop()  # the node stops acting on its tasks for a while

        assert ecs.delete_service(cluster="dr", service="s",
                                  force=True)["service"]["status"] == "DRAINING"
        time.sleep(1.5)
        assert describe(ecs, "dr", "s")["status"] == "DRAINING"
        code, msg, _ = error_of(create, ecs, "dr", "s", td, desired=1)
        assert (code, msg) == ("InvalidParameterException",
                               "Unable to Start a service that is still Draining.")
        code, _, _ = error_of(ecs.delete_cluster, cluster="dr")
        assert code == "ClusterContainsServicesException"
        assert ecs.describe_clusters(clusters=["dr"])["clusters"][0]["activeServicesCount"] == 0
        with pytest.raises(botocore.exceptions.WaiterError):
            ecs.get_waiter("services_stable").wait(cluster="dr", services=["s"],
                                                   WaiterConfig={"Delay": 1, "MaxAttempts": 2})

        a = FakeAgent(b, node_id="drain-node").start()  # the node comes back
        ecs.get_waiter("services_inactive").wait(cluster="dr", services=["s"],
                                                 WaiterConfig=FAST_WAIT)
        ecs.delete_cluster(cluster="dr")
    finally:
        a.stop()


# -- the controller ---------------------------------------------------------------------------

def test_ecs_service_replaces_a_crashed_task(ecs, cluster, agent):
    td = register(ecs, "svc-crash")
    create(ecs, cluster, "crash", td, desired=2)
    svc = stable(ecs, cluster, "crash")
    deployment = svc["deployments"][0]["id"]
    victim = running_tasks(ecs, cluster, "crash")[0]["taskArn"]

    crash([agent], victim)
    dead = wait_for(lambda: [t for t in ecs.describe_tasks(cluster=cluster, tasks=[victim])
                             ["tasks"] if t["lastStatus"] == "STOPPED"], what="crashed task")
    assert dead[0]["stopCode"] == "EssentialContainerExited"

    def replaced():
        tasks = running_tasks(ecs, cluster, "crash")
        ok = len(tasks) == 2 and all(t["lastStatus"] == "RUNNING" for t in tasks)
        return ok and victim not in [t["taskArn"] for t in tasks]
    wait_for(replaced, what="replacement task")
    svc = stable(ecs, cluster, "crash")
    assert svc["runningCount"] == 2
    assert svc["deployments"][0]["id"] == deployment
    assert svc["deployments"][0]["failedTasks"] == 1
    assert any(m.startswith("(service crash) has started 1 tasks: (task ") for m in messages(svc))
    assert messages(svc)[0] == "(service crash) has reached a steady state."


def test_ecs_bad_deployment_rolls_back_on_its_own(ecs, cluster):
    good = register(ecs, "svc-rb")
    bad = register(ecs, "svc-rb", labels={
        "berth.fake-agent/fail-start":
            "CannotPullContainerError: pull image manifest has been retried 1 time(s): "
            "failed to resolve ref docker.io/library/nope:latest: not found"})
    create(ecs, cluster, "rb", good, desired=2,
           deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True,
                                                                 "rollback": True}})
    first = stable(ecs, cluster, "rb")["deployments"][0]["id"]
    good_tasks = sorted(t["taskArn"] for t in running_tasks(ecs, cluster, "rb"))

    updated = ecs.update_service(cluster=cluster, service="rb", taskDefinition=bad)["service"]
    failed_id = updated["deployments"][0]["id"]

    def rolled_back():
        s = describe(ecs, cluster, "rb")
        return s if s["deployments"][0]["id"] == first else None
    svc = wait_for(rolled_back, timeout=60, what="rollback")
    primary = svc["deployments"][0]
    assert primary["status"] == "PRIMARY"
    if len(svc["deployments"]) == 2:
        assert primary["rolloutStateReason"] == \
            f"ECS deployment circuit breaker: rolling back to deploymentId {first}."
        assert svc["deployments"][1]["id"] == failed_id
        assert svc["deployments"][1]["rolloutState"] == "FAILED"
        assert svc["deployments"][1]["rolloutStateReason"] == \
            "ECS deployment circuit breaker: tasks failed to start."
        assert svc["deployments"][1]["failedTasks"] >= 3

    svc = stable(ecs, cluster, "rb")
    [d] = svc["deployments"]
    assert d["id"] == first and d["rolloutState"] == "COMPLETED"
    assert svc["taskDefinition"] == good
    msgs = messages(svc)
    assert f"(service rb) (deployment {failed_id}) deployment failed: tasks failed to start." \
        in msgs
    assert f"(service rb) rolling back to deployment {first}." in msgs
    # The good tasks served throughout (minimumHealthyPercent 100).
    assert sorted(t["taskArn"] for t in running_tasks(ecs, cluster, "rb")) == good_tasks
    failed = ecs.list_tasks(cluster=cluster, serviceName="rb", desiredStatus="STOPPED")
    stopped = ecs.describe_tasks(cluster=cluster, tasks=failed["taskArns"])["tasks"]
    # At least the threshold failed to start; one still starting when the
    # breaker tripped was stopped by the scheduler.
    codes = [t["stopCode"] for t in stopped]
    assert codes.count("TaskFailedToStart") >= 3
    assert set(codes) <= {"TaskFailedToStart", "ServiceSchedulerInitiated"}
    assert all(t["startedBy"] == failed_id for t in stopped)


def test_ecs_circuit_breaker_without_rollback_fails_the_deployment(ecs, cluster):
    good = register(ecs, "svc-cb")
    bad = register(ecs, "svc-cb",
                   labels={"berth.fake-agent/fail-start": "CannotPullContainerError: x"})
    create(ecs, cluster, "cb", good, desired=1,
           deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True,
                                                                 "rollback": False}})
    stable(ecs, cluster, "cb")
    new_id = ecs.update_service(cluster=cluster, service="cb",
                                taskDefinition=bad)["service"]["deployments"][0]["id"]

    def failed():
        s = describe(ecs, cluster, "cb")
        return s if s["deployments"][0]["rolloutState"] == "FAILED" else None
    svc = wait_for(failed, timeout=60, what="deployment FAILED")
    d = svc["deployments"][0]
    assert d["id"] == new_id and d["status"] == "PRIMARY"
    assert d["rolloutStateReason"] == "ECS deployment circuit breaker: tasks failed to start."
    assert d["failedTasks"] == 3
    assert len(svc["deployments"]) == 2  # the old one keeps serving
    assert svc["runningCount"] == 1
    time.sleep(2)
    assert describe(ecs, cluster, "cb")["deployments"][0]["failedTasks"] == 3
    ecs.update_service(cluster=cluster, service="cb", desiredCount=0)
    ecs.delete_service(cluster=cluster, service="cb")


def test_ecs_service_replaces_tasks_failing_health_checks(ecs, cluster):
    td = register(ecs, "svc-hc", labels={"berth.fake-agent/health": "UNHEALTHY"}, health=True)
    create(ecs, cluster, "hc", td, desired=1)

    def stopped_unhealthy():
        arns = ecs.list_tasks(cluster=cluster, serviceName="hc",
                              desiredStatus="STOPPED")["taskArns"]
        if not arns:
            return None
        tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
        return [t for t in tasks if t.get("stoppedReason") == "Task failed container health checks"]
    [t, *_] = wait_for(stopped_unhealthy, timeout=30, what="health check stop")
    assert t["stopCode"] == "ServiceSchedulerInitiated"
    # The event is written right after the task is stopped.
    event = f"(service hc) (task {task_id(t['taskArn'])}) failed container health checks."
    wait_for(lambda: event in messages(describe(ecs, cluster, "hc")), what="health event")
    # Replaced: a new task is started for the stopped one.
    wait_for(lambda: [m for m in messages(describe(ecs, cluster, "hc"))
                      if m.startswith("(service hc) has started 1 tasks")][1:],
             what="replacement")
    ecs.update_service(cluster=cluster, service="hc", desiredCount=0)
    ecs.delete_service(cluster=cluster, service="hc")


def test_ecs_service_that_cannot_be_placed_backs_off_with_an_event(berthd_factory):
    b = berthd_factory("svc-capacity")
    ecs = b.client("ecs")
    a = FakeAgent(b, node_id="small-node", cpu=1024, memory=2048).start()
    try:
        ecs.create_cluster(clusterName="cap")
        td = register(ecs, "svc-big", cpu="512", memory="1024")
        create(ecs, "cap", "big", td, desired=3)
        msg = ("(service big) was unable to place a task. Reason: Capacity is unavailable at this "
               "time. Please try again later or in a different availability zone. For more "
               "information, see the Troubleshooting section of the Amazon ECS Developer Guide.")
        wait_for(lambda: msg in messages(describe(ecs, "cap", "big")), what="placement event")
        wait_for(lambda: describe(ecs, "cap", "big")["runningCount"] == 2, what="two tasks")
        time.sleep(3)
        svc = describe(ecs, "cap", "big")
        assert svc["runningCount"] == 2
        assert messages(svc).count(msg) == 1
        assert len(running_tasks(ecs, "cap", "big")) == 2

        # Capacity comes: the service reaches its count.
        a2 = FakeAgent(b, node_id="big-node", cpu=4096, memory=8192).start()
        try:
            svc = stable(ecs, "cap", "big")
            assert svc["runningCount"] == 3
        finally:
            a2.stop()
    finally:
        a.stop()


def test_ecs_service_tags_and_propagation(ecs, cluster):
    td = register(ecs, "svc-tags", tags=[{"key": "from", "value": "taskdef"}])
    svc = create(ecs, cluster, "tg", td, desired=1, tags=[{"key": "team", "value": "blue"}],
                 propagateTags="SERVICE", enableECSManagedTags=True)
    arn = svc["serviceArn"]
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "env", "value": "test"}])
    tags = ecs.list_tags_for_resource(resourceArn=arn)["tags"]
    assert {t["key"]: t["value"] for t in tags} == {"team": "blue", "env": "test"}
    ecs.untag_resource(resourceArn=arn, tagKeys=["env"])
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "team",
                                                                    "value": "blue"}]
    code, _, _ = error_of(ecs.list_tags_for_resource,
                          resourceArn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/none")
    assert code in ("ResourceNotFoundException", "InvalidParameterException")

    stable(ecs, cluster, "tg")
    [task] = ecs.describe_tasks(cluster=cluster,
                                tasks=ecs.list_tasks(cluster=cluster, serviceName="tg")["taskArns"],
                                include=["TAGS"])["tasks"]
    got = {t["key"]: t["value"] for t in task.get("tags", [])}
    assert got["team"] == "blue"
    assert got["aws:ecs:serviceName"] == "tg"
    assert got["aws:ecs:clusterName"] == cluster


# -- restart safety ---------------------------------------------------------------------------

def test_ecs_service_survives_berthd_kill9(berthd_factory):
    b = berthd_factory("svc-restart")
    ecs = b.client("ecs")
    a = FakeAgent(b, node_id="restart-node").start()
    try:
        ecs.create_cluster(clusterName="rs")
        td = register(ecs, "svc-rs")
        create(ecs, "rs", "keep", td, desired=2)
        svc = stable(ecs, "rs", "keep")
        tasks = sorted(t["taskArn"] for t in running_tasks(ecs, "rs", "keep"))
        events = len(svc["events"])

        b.kill9()
        b.start()
        ecs = b.client("ecs")
        time.sleep(2)
        svc = stable(ecs, "rs", "keep")
        assert sorted(t["taskArn"] for t in running_tasks(ecs, "rs", "keep")) == tasks
        assert len(svc["events"]) == events, "a restart alone starts or stops nothing"

        # The restarted controller still keeps the count.
        crash([a], tasks[0])
        wait_for(lambda: tasks[0] not in [t["taskArn"] for t in running_tasks(ecs, "rs", "keep")]
                 and describe(ecs, "rs", "keep")["runningCount"] == 2, what="replacement")

        # kill -9 in the middle of a deployment: it finishes after the restart.
        new_id = ecs.update_service(cluster="rs", service="keep",
                                    forceNewDeployment=True)["service"]["deployments"][0]["id"]
        time.sleep(0.3)
        b.kill9()
        b.start()
        ecs = b.client("ecs")
        svc = stable(ecs, "rs", "keep")
        assert svc["deployments"][0]["id"] == new_id
        assert svc["deployments"][0]["rolloutState"] == "COMPLETED"
        current = running_tasks(ecs, "rs", "keep")
        assert len(current) == 2
        assert all(t["startedBy"] == new_id for t in current)
    finally:
        a.stop()
