"""ECS task definitions through boto3: registration rules, revisions, listing, tags."""
import re

import botocore.exceptions
import pytest

from conftest import ACCOUNT, REGION

NET = {"awsvpcConfiguration": {"subnets": ["subnet-0123456789abcdef0"]}}


def fargate(ecs, family, cpu="256", memory="512", containers=None, **extra):
    return ecs.register_task_definition(
        family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
        cpu=cpu, memory=memory,
        containerDefinitions=containers or [{"name": "app", "image": "busybox",
                                             "command": ["sleep", "3600"]}],
        **extra)


def error_of(call, *args, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(*args, **kwargs)
    err = info.value.response
    return err["Error"]["Code"], err["Error"]["Message"], err["ResponseMetadata"]["HTTPStatusCode"]


def arn(family, revision):
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{revision}"


def test_ecs_register_task_definition_returns_revision_and_metadata(ecs):
    out = fargate(ecs, "td-basic", tags=[{"key": "team", "value": "a"}])
    td = out["taskDefinition"]
    assert td["taskDefinitionArn"] == arn("td-basic", 1)
    assert td["family"] == "td-basic"
    assert td["revision"] == 1
    assert td["status"] == "ACTIVE"
    assert td["registeredBy"] == f"arn:aws:iam::{ACCOUNT}:root"
    assert td["registeredAt"].year >= 2024
    assert "FARGATE" in td["compatibilities"]
    assert td["containerDefinitions"][0]["essential"] is True
    assert out["tags"] == [{"key": "team", "value": "a"}]


def test_ecs_register_task_definition_normalizes_unit_strings(ecs):
    td = fargate(ecs, "td-units", cpu="1 vCPU", memory="2GB")["taskDefinition"]
    assert (td["cpu"], td["memory"]) == ("1024", "2048")


def test_ecs_register_task_definition_c01_missing_memory_is_client_exception(ecs):
    code, message, status = error_of(
        ecs.register_task_definition, family="c01", requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc", cpu="256",
        containerDefinitions=[{"name": "app", "image": "busybox", "essential": True,
                               "command": ["sleep", "60"]}])
    assert (code, status) == ("ClientException", 400)
    assert message == "Fargate requires that 'memory' be defined at the task level."

    code, message, _ = error_of(
        ecs.register_task_definition, family="c01", requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc", memory="512",
        containerDefinitions=[{"name": "app", "image": "busybox"}])
    assert code == "ClientException"
    assert message == "Fargate requires that 'cpu' be defined at the task level."
    assert ecs.list_task_definitions(familyPrefix="c01")["taskDefinitionArns"] == []


@pytest.mark.parametrize("cpu,memory", [("512", "512"), ("4096", "2048"), ("256", "4096"),
                                        ("8192", "18432"), ("32768", "65536")])
def test_ecs_register_task_definition_c02_rejects_invalid_sizes(ecs, cpu, memory):
    code, message, status = error_of(fargate, ecs, "c02", cpu=cpu, memory=memory)
    assert (code, status) == ("ClientException", 400)
    assert "Fargate" in message or "cpu" in message
    assert ecs.list_task_definitions(familyPrefix="c02")["taskDefinitionArns"] == []


def test_ecs_register_task_definition_c03_container_memory_rules(ecs):
    td = fargate(ecs, "c03", containers=[{"name": "app", "image": "busybox"}])["taskDefinition"]
    assert td["revision"] == 1 and td["status"] == "ACTIVE"

    code, message, _ = error_of(
        ecs.register_task_definition, family="c03-ec2", requiresCompatibilities=["EC2"],
        networkMode="bridge", containerDefinitions=[{"name": "app", "image": "busybox"}])
    assert code == "ClientException"
    assert "'app'" in message and "memoryReservation" in message

    code, message, _ = error_of(fargate, ecs, "c03-big", containers=[
        {"name": "big", "image": "busybox", "memory": 1024}])
    assert code == "ClientException"
    assert message == "The 'memory' setting for container 'big' is greater than for the task."


def test_ecs_register_task_definition_c04_awsvpc_port_mappings(ecs):
    code, message, _ = error_of(fargate, ecs, "c04", containers=[
        {"name": "web", "image": "nginx", "portMappings": [{"containerPort": 80,
                                                           "hostPort": 8080}]}])
    assert code == "ClientException"
    assert "host ports and container ports" in message

    fargate(ecs, "c04", containers=[{"name": "web", "image": "nginx",
                                     "portMappings": [{"containerPort": 80}]}])
    td = ecs.describe_task_definition(taskDefinition="c04")["taskDefinition"]
    mapping = td["containerDefinitions"][0]["portMappings"][0]
    assert (mapping["containerPort"], mapping["hostPort"], mapping["protocol"]) == (80, 80, "tcp")


def test_ecs_register_task_definition_c05_success_dependency_on_essential(ecs):
    init = {"name": "init", "image": "busybox", "essential": True, "command": ["true"]}
    app = {"name": "app", "image": "busybox", "essential": True, "command": ["sleep", "300"],
           "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}]}
    code, _, status = error_of(fargate, ecs, "c05", containers=[init, app])
    assert (code, status) == ("ClientException", 400)
    init["essential"] = False
    assert fargate(ecs, "c05", containers=[init, app])["taskDefinition"]["revision"] == 1


def test_ecs_task_definition_c08_revisions_and_deregistration(ecs, berthd):
    assert fargate(ecs, "web")["taskDefinition"]["revision"] == 1
    assert fargate(ecs, "web")["taskDefinition"]["revision"] == 2
    fargate(ecs, "web-2")  # a family whose name starts with "web" is not listed under "web"

    out = ecs.deregister_task_definition(taskDefinition="web:1")["taskDefinition"]
    assert out["status"] == "INACTIVE"
    assert out["deregisteredAt"] >= out["registeredAt"]

    assert ecs.list_task_definitions(familyPrefix="web")["taskDefinitionArns"] == [arn("web", 2)]
    assert ecs.list_task_definitions(familyPrefix="web", status="INACTIVE")[
        "taskDefinitionArns"] == [arn("web", 1)]
    assert ecs.describe_task_definition(taskDefinition="web:1")["taskDefinition"][
        "status"] == "INACTIVE"
    assert ecs.describe_task_definition(taskDefinition="web")["taskDefinition"]["revision"] == 2

    ecs.create_cluster(clusterName="c08")
    code, message, status = error_of(ecs.run_task, cluster="c08", taskDefinition="web:1",
                                     launchType="FARGATE", networkConfiguration=NET)
    assert (code, message, status) == ("InvalidParameterException", "TaskDefinition is inactive",
                                       400)

    assert fargate(ecs, "web")["taskDefinition"]["revision"] == 3


def test_ecs_describe_task_definition_by_every_reference_form(ecs):
    fargate(ecs, "refs")
    fargate(ecs, "refs")
    for ref in ("refs", "refs:2", arn("refs", 2)):
        assert ecs.describe_task_definition(taskDefinition=ref)["taskDefinition"]["revision"] == 2
    assert ecs.describe_task_definition(taskDefinition="refs:1")["taskDefinition"][
        "revision"] == 1


@pytest.mark.parametrize("ref", ["nope", "refs-missing:1", "refs:0x", "arn:aws:ecs:x"])
def test_ecs_describe_task_definition_unknown_is_client_exception(ecs, ref):
    code, message, status = error_of(ecs.describe_task_definition, taskDefinition=ref)
    assert (code, message, status) == ("ClientException", "Unable to describe task definition.",
                                       400)


def test_ecs_describe_task_definition_includes_tags_only_when_asked(ecs):
    fargate(ecs, "tagged", tags=[{"key": "k", "value": "v"}])
    assert "tags" not in ecs.describe_task_definition(taskDefinition="tagged")
    out = ecs.describe_task_definition(taskDefinition="tagged", include=["TAGS"])
    assert out["tags"] == [{"key": "k", "value": "v"}]


def test_ecs_deregister_task_definition_needs_a_revision(ecs):
    fargate(ecs, "dereg")
    code, _, _ = error_of(ecs.deregister_task_definition, taskDefinition="dereg")
    assert code == "ClientException"
    code, message, _ = error_of(ecs.deregister_task_definition, taskDefinition="dereg:9")
    assert (code, message) == ("ClientException", "Unable to describe task definition.")
    assert ecs.describe_task_definition(taskDefinition="dereg")["taskDefinition"][
        "status"] == "ACTIVE"


def test_ecs_list_task_definitions_sorts_and_paginates(ecs):
    for _ in range(5):
        fargate(ecs, "pages")
    asc = ecs.list_task_definitions(familyPrefix="pages")["taskDefinitionArns"]
    assert asc == [arn("pages", r) for r in range(1, 6)]
    desc = ecs.list_task_definitions(familyPrefix="pages", sort="DESC")["taskDefinitionArns"]
    assert desc == list(reversed(asc))

    seen, token = [], None
    while True:
        kwargs = {"familyPrefix": "pages", "sort": "DESC", "maxResults": 2}
        if token:
            kwargs["nextToken"] = token
        page = ecs.list_task_definitions(**kwargs)
        assert len(page["taskDefinitionArns"]) <= 2
        seen += page["taskDefinitionArns"]
        token = page.get("nextToken")
        if not token:
            break
    assert seen == desc

    paginated = [a for p in ecs.get_paginator("list_task_definitions").paginate(
        familyPrefix="pages", PaginationConfig={"PageSize": 3}) for a in p["taskDefinitionArns"]]
    assert paginated == asc

    code, _, _ = error_of(ecs.list_task_definitions, maxResults=101)
    assert code == "InvalidParameterException"


def test_ecs_list_task_definitions_without_family_lists_everything(ecs):
    fargate(ecs, "zz-all-a")
    fargate(ecs, "zz-all-b")
    arns = [a for p in ecs.get_paginator("list_task_definitions").paginate()
            for a in p["taskDefinitionArns"]]
    assert arn("zz-all-a", 1) in arns and arn("zz-all-b", 1) in arns
    families = [re.match(r".*task-definition/([^:]+):(\d+)$", a).groups() for a in arns]
    assert families == sorted(families, key=lambda f: (f[0], int(f[1])))


def test_ecs_list_task_definition_families_by_status_and_prefix(ecs):
    fargate(ecs, "fam-active")
    fargate(ecs, "fam-gone")
    ecs.deregister_task_definition(taskDefinition="fam-gone:1")
    fargate(ecs, "fam-mixed")
    fargate(ecs, "fam-mixed")
    ecs.deregister_task_definition(taskDefinition="fam-mixed:1")

    assert ecs.list_task_definition_families(familyPrefix="fam-")["families"] == [
        "fam-active", "fam-gone", "fam-mixed"]
    assert ecs.list_task_definition_families(familyPrefix="fam-", status="ACTIVE")[
        "families"] == ["fam-active", "fam-mixed"]
    assert ecs.list_task_definition_families(familyPrefix="fam-", status="INACTIVE")[
        "families"] == ["fam-gone"]
    first = ecs.list_task_definition_families(familyPrefix="fam-", maxResults=2)
    assert first["families"] == ["fam-active", "fam-gone"]
    second = ecs.list_task_definition_families(familyPrefix="fam-", maxResults=2,
                                               nextToken=first["nextToken"])
    assert second["families"] == ["fam-mixed"] and "nextToken" not in second


def test_ecs_task_definition_tags_through_tag_operations(ecs):
    td_arn = fargate(ecs, "td-tags", tags=[{"key": "a", "value": "1"}])["taskDefinition"][
        "taskDefinitionArn"]
    ecs.tag_resource(resourceArn=td_arn, tags=[{"key": "b", "value": "2"},
                                               {"key": "a", "value": "3"}])
    tags = ecs.list_tags_for_resource(resourceArn=td_arn)["tags"]
    assert sorted((t["key"], t["value"]) for t in tags) == [("a", "3"), ("b", "2")]
    ecs.untag_resource(resourceArn=td_arn, tagKeys=["a"])
    assert ecs.list_tags_for_resource(resourceArn=td_arn)["tags"] == [{"key": "b", "value": "2"}]
    out = ecs.describe_task_definition(taskDefinition=td_arn, include=["TAGS"])
    assert out["tags"] == [{"key": "b", "value": "2"}]


def test_ecs_tags_are_validated(ecs):
    code, _, _ = error_of(fargate, ecs, "td-badtags", tags=[{"key": "aws:x", "value": "1"}])
    assert code == "InvalidParameterException"
    code, _, _ = error_of(fargate, ecs, "td-badtags",
                          tags=[{"key": f"k{i}", "value": "v"} for i in range(51)])
    assert code == "InvalidParameterException"
    code, message, _ = error_of(ecs.list_tags_for_resource,
                                resourceArn="arn:aws:ecr:us-east-1:000000000000:repository/x")
    assert (code, message) == ("InvalidParameterException", "The ARN provided is invalid.")


def test_ecs_task_definition_survives_restart(berthd_factory):
    b = berthd_factory("taskdefs-restart")
    ecs = b.client("ecs")
    fargate(ecs, "durable")
    ecs.deregister_task_definition(taskDefinition="durable:1")
    b.kill9()
    b.start()
    ecs = b.client("ecs")
    assert ecs.describe_task_definition(taskDefinition="durable:1")["taskDefinition"][
        "status"] == "INACTIVE"
    assert fargate(ecs, "durable")["taskDefinition"]["revision"] == 2


def signed_call(berthd, operation, body):
    """A JSON 1.1 ECS call signed with botocore's own signer, for operations newer than this
    machine's boto3 model (which cannot send them)."""
    import json
    import urllib.error
    import urllib.request

    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    req = botocore.awsrequest.AWSRequest(
        method="POST", url=berthd.endpoint + "/", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/x-amz-json-1.1",
                 "X-Amz-Target": f"AmazonEC2ContainerServiceV20141113.{operation}"})
    akid, secret = berthd.credentials()
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(akid, secret), "ecs",
                            REGION).add_auth(req)
    prepared = req.prepare()
    r = urllib.request.Request(prepared.url, data=prepared.body, method="POST",
                               headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_ecs_delete_task_definitions(ecs, berthd):
    fargate(ecs, "td-del")
    fargate(ecs, "td-del")
    # An ACTIVE revision is refused, and so are unknown and revisionless ones.
    status, out = signed_call(berthd, "DeleteTaskDefinitions",
                              {"taskDefinitions": ["td-del:1", "td-del:99", "td-del"]})
    assert status == 200
    assert out["taskDefinitions"] == []
    assert out["failures"] == [
        {"arn": arn("td-del", 1),
         "reason": "The specified task definition is still in ACTIVE status. Please deregister "
                   "the target and try again."},
        {"arn": arn("td-del", 99),
         "reason": "The specified task definition does not exist. Specify a valid account, "
                   "family, revision and try again."},
        {"arn": "td-del",
         "reason": "The specified task definition identifier is invalid. Specify a valid name "
                   "or ARN and try again."}]
    assert ecs.describe_task_definition(taskDefinition="td-del:1")[
        "taskDefinition"]["status"] == "ACTIVE"

    ecs.deregister_task_definition(taskDefinition="td-del:1")
    status, out = signed_call(berthd, "DeleteTaskDefinitions",
                              {"taskDefinitions": [arn("td-del", 1)]})
    assert status == 200, out
    assert out["failures"] == []
    assert len(out["taskDefinitions"]) == 1
    td = out["taskDefinitions"][0]
    assert td["taskDefinitionArn"] == arn("td-del", 1)
    assert td["status"] == "DELETE_IN_PROGRESS"
    assert isinstance(td["deleteRequestedAt"], (int, float))
    # Asking again answers the same.
    status, again = signed_call(berthd, "DeleteTaskDefinitions",
                                {"taskDefinitions": ["td-del:1"]})
    assert again["taskDefinitions"][0]["status"] == "DELETE_IN_PROGRESS"

    described = ecs.describe_task_definition(taskDefinition="td-del:1")["taskDefinition"]
    assert described["status"] == "DELETE_IN_PROGRESS"
    # It is no longer INACTIVE, and nothing new can use it.
    assert arn("td-del", 1) not in ecs.list_task_definitions(
        familyPrefix="td-del", status="INACTIVE")["taskDefinitionArns"]
    ecs.create_cluster(clusterName="td-del")
    code, msg, _ = error_of(ecs.run_task, cluster="td-del", taskDefinition="td-del:1",
                            launchType="FARGATE", networkConfiguration=NET)
    assert (code, msg) == ("InvalidParameterException", "TaskDefinition is inactive")
    # The family keeps its revision counter.
    assert fargate(ecs, "td-del")["taskDefinition"]["revision"] == 3

    status, out = signed_call(berthd, "DeleteTaskDefinitions",
                              {"taskDefinitions": [f"td-del:{i}" for i in range(1, 12)]})
    assert status == 400
    assert out["__type"].endswith("InvalidParameterException")
    status, out = signed_call(berthd, "DeleteTaskDefinitions", {})
    assert status == 400
    assert out["__type"].endswith("InvalidParameterException")
