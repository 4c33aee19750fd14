"""ECS cluster updates through boto3 and the AWS CLI: UpdateCluster, UpdateClusterSettings and
PutClusterCapacityProviders, with the capacity provider rules a Fargate cluster follows. Tasks
here are played by FakeAgent nodes (a test double of the node agent that runs no containers)."""
import json

import botocore.exceptions
import pytest

from conftest import ACCOUNT, REGION
from fake_agent import FakeAgent

NET = {"awsvpcConfiguration": {"subnets": ["subnet-0123456789abcdef0"]}}


def error_of(call, *args, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(*args, **kwargs)
    err = info.value.response["Error"]
    return err["Code"], err["Message"]


def settings_of(ecs, cluster):
    out = ecs.describe_clusters(clusters=[cluster], include=["SETTINGS"])["clusters"]
    assert len(out) == 1
    return out[0]["settings"]


@pytest.fixture(scope="module")
def plane(berthd_factory):
    b = berthd_factory("ecs-clusters", extra_args=["--no-agent"])
    agent = FakeAgent(b, zone="us-east-1a").start()
    yield b
    assert agent.errors == [], agent.errors
    agent.stop()


@pytest.fixture
def ecs(plane):
    return plane.client("ecs")


def register(ecs, family):
    return ecs.register_task_definition(
        family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256",
        memory="512", containerDefinitions=[{"name": "app", "image": "busybox",
                                             "command": ["sleep", "3600"]}],
    )["taskDefinition"]["taskDefinitionArn"]


def test_new_cluster_has_container_insights_disabled_and_no_providers(ecs):
    c = ecs.create_cluster(clusterName="plain")["cluster"]
    assert c["settings"] == [{"name": "containerInsights", "value": "disabled"}]
    assert c["capacityProviders"] == []
    assert c["defaultCapacityProviderStrategy"] == []


def test_update_cluster_settings_replaces_the_setting(ecs):
    ecs.create_cluster(clusterName="insights")
    out = ecs.update_cluster_settings(
        cluster="insights", settings=[{"name": "containerInsights", "value": "enabled"}])
    c = out["cluster"]
    assert c["clusterArn"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/insights"
    assert c["status"] == "ACTIVE"
    assert c["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    assert settings_of(ecs, "insights") == [{"name": "containerInsights", "value": "enabled"}]
    # By ARN too, and "enhanced" is a value AWS accepts.
    ecs.update_cluster_settings(cluster=c["clusterArn"],
                                settings=[{"name": "containerInsights", "value": "enhanced"}])
    assert settings_of(ecs, "insights") == [{"name": "containerInsights", "value": "enhanced"}]


def test_update_cluster_settings_errors_change_nothing(ecs):
    ecs.create_cluster(clusterName="insights-bad")
    code, msg = error_of(ecs.update_cluster_settings, cluster="insights-bad",
                         settings=[{"name": "containerInsights", "value": "sometimes"}])
    assert code == "InvalidParameterException"
    assert "sometimes" in msg
    # boto3 leaves enum values to the server, which checks them as AWS does.
    code, msg = error_of(ecs.update_cluster_settings, cluster="insights-bad",
                         settings=[{"name": "bogus", "value": "enabled"}])
    assert code == "InvalidParameterException"
    assert msg == (
        "1 validation error detected: Value 'bogus' at 'settings.1.member.name' failed to "
        "satisfy constraint: Member must satisfy enum value set: [containerInsights]")
    assert settings_of(ecs, "insights-bad") == [{"name": "containerInsights",
                                                 "value": "disabled"}]
    code, msg = error_of(ecs.update_cluster_settings, cluster="no-such-cluster",
                         settings=[{"name": "containerInsights", "value": "enabled"}])
    assert (code, msg) == ("ClusterNotFoundException", "Cluster not found.")
    # A deleted cluster cannot be updated either.
    ecs.delete_cluster(cluster="insights-bad")
    code, _ = error_of(ecs.update_cluster_settings, cluster="insights-bad",
                       settings=[{"name": "containerInsights", "value": "enabled"}])
    assert code == "ClusterNotFoundException"


def test_update_cluster_execute_command_configuration(ecs):
    ecs.create_cluster(clusterName="exec")
    config = {"executeCommandConfiguration": {
        "logging": "OVERRIDE",
        "logConfiguration": {"cloudWatchLogGroupName": "/exec", "cloudWatchEncryptionEnabled": False},
    }}
    c = ecs.update_cluster(cluster="exec", configuration=config,
                           settings=[{"name": "containerInsights", "value": "enabled"}])["cluster"]
    assert c["configuration"] == config
    assert c["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    described = ecs.describe_clusters(clusters=["exec"], include=["CONFIGURATIONS"])["clusters"][0]
    assert described["configuration"] == config
    # Without include=CONFIGURATIONS the configuration is not shown.
    assert "configuration" not in ecs.describe_clusters(clusters=["exec"])["clusters"][0]

    code, _ = error_of(ecs.update_cluster, cluster="exec", configuration={
        "executeCommandConfiguration": {"logging": "OVERRIDE"}})
    assert code == "InvalidParameterException"
    code, _ = error_of(ecs.update_cluster, cluster="exec", configuration={
        "executeCommandConfiguration": {"logging": "NONE", "logConfiguration": {
            "cloudWatchLogGroupName": "/x"}}})
    assert code == "InvalidParameterException"
    # The failed updates changed nothing.
    assert ecs.describe_clusters(clusters=["exec"], include=["CONFIGURATIONS"])[
        "clusters"][0]["configuration"] == config


def test_update_cluster_service_connect_defaults(ecs):
    ecs.create_cluster(clusterName="sc")
    c = ecs.update_cluster(cluster="sc", serviceConnectDefaults={"namespace": "internal"})[
        "cluster"]
    assert c["serviceConnectDefaults"] == {
        "namespace": f"arn:aws:servicediscovery:{REGION}:{ACCOUNT}:namespace/internal"}
    code, _ = error_of(ecs.update_cluster, cluster="sc",
                       serviceConnectDefaults={"namespace": "has/slash"})
    assert code == "InvalidParameterException"


def test_put_cluster_capacity_providers(ecs):
    ecs.create_cluster(clusterName="cp")
    c = ecs.put_cluster_capacity_providers(
        cluster="cp", capacityProviders=["FARGATE", "FARGATE_SPOT"],
        defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 3},
                                         {"capacityProvider": "FARGATE", "base": 1,
                                          "weight": 1}])["cluster"]
    assert c["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    assert c["defaultCapacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE_SPOT", "weight": 3, "base": 0},
        {"capacityProvider": "FARGATE", "weight": 1, "base": 1}]
    described = ecs.describe_clusters(clusters=["cp"])["clusters"][0]
    assert described["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    assert described["defaultCapacityProviderStrategy"] == c["defaultCapacityProviderStrategy"]

    # A service without a launch type takes the cluster's default strategy.
    register(ecs, "cp-app")
    svc = ecs.create_service(cluster="cp", serviceName="web", taskDefinition="cp-app",
                             desiredCount=0, networkConfiguration=NET)["service"]
    assert svc["capacityProviderStrategy"] == c["defaultCapacityProviderStrategy"]


@pytest.mark.parametrize("providers,strategy,message", [
    (["EC2_PROVIDER"], [],
     "The specified capacity provider does not exist. Specify a valid name or ARN and try "
     "again."),
    (["FARGATE"], [{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
     "The specified capacity provider strategy cannot contain a capacity provider that is not "
     "associated with the cluster. Associate the capacity provider with the cluster or specify "
     "a valid capacity provider and try again."),
    (["FARGATE", "FARGATE_SPOT"], [{"capacityProvider": "FARGATE", "base": 1},
                                   {"capacityProvider": "FARGATE_SPOT", "base": 2}],
     "Only one capacity provider in a capacity provider strategy can have a base defined."),
    (["FARGATE"], [{"capacityProvider": "FARGATE", "weight": 1001}],
     "The capacity provider strategy weight or base is out of range."),
])
def test_put_cluster_capacity_providers_rejects_bad_input(ecs, providers, strategy, message):
    ecs.create_cluster(clusterName="cp-bad")
    ecs.put_cluster_capacity_providers(cluster="cp-bad", capacityProviders=["FARGATE"],
                                       defaultCapacityProviderStrategy=[])
    code, msg = error_of(ecs.put_cluster_capacity_providers, cluster="cp-bad",
                         capacityProviders=providers, defaultCapacityProviderStrategy=strategy)
    assert (code, msg) == ("InvalidParameterException", message)
    c = ecs.describe_clusters(clusters=["cp-bad"])["clusters"][0]
    assert c["capacityProviders"] == ["FARGATE"]
    assert c["defaultCapacityProviderStrategy"] == []


def test_create_cluster_checks_providers_too(ecs):
    code, msg = error_of(ecs.create_cluster, clusterName="cp-create",
                         capacityProviders=["MY_ASG"])
    assert code == "InvalidParameterException"
    assert msg.startswith("The specified capacity provider does not exist.")
    assert ecs.describe_clusters(clusters=["cp-create"])["failures"][0]["reason"] == "MISSING"


def test_capacity_provider_in_use_cannot_be_removed(ecs):
    ecs.create_cluster(clusterName="cp-use", capacityProviders=["FARGATE", "FARGATE_SPOT"])
    register(ecs, "cp-use-app")
    # A running task placed by FARGATE_SPOT keeps that provider.
    out = ecs.run_task(cluster="cp-use", taskDefinition="cp-use-app", networkConfiguration=NET,
                       capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT",
                                                  "weight": 1}])
    assert out["failures"] == []
    task = out["tasks"][0]["taskArn"]
    code, msg = error_of(ecs.put_cluster_capacity_providers, cluster="cp-use",
                         capacityProviders=["FARGATE"], defaultCapacityProviderStrategy=[])
    assert (code, msg) == ("ResourceInUseException",
                           "The specified capacity provider is in use and cannot be removed.")
    ecs.stop_task(cluster="cp-use", task=task)
    ecs.get_waiter("tasks_stopped").wait(cluster="cp-use", tasks=[task],
                                         WaiterConfig={"Delay": 1, "MaxAttempts": 30})

    # A service using FARGATE keeps FARGATE.
    ecs.create_service(cluster="cp-use", serviceName="svc", taskDefinition="cp-use-app",
                       desiredCount=0, networkConfiguration=NET,
                       capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}])
    code, _ = error_of(ecs.put_cluster_capacity_providers, cluster="cp-use",
                       capacityProviders=["FARGATE_SPOT"], defaultCapacityProviderStrategy=[])
    assert code == "ResourceInUseException"
    # Removing the provider nothing uses is fine.
    c = ecs.put_cluster_capacity_providers(cluster="cp-use", capacityProviders=["FARGATE"],
                                           defaultCapacityProviderStrategy=[])["cluster"]
    assert c["capacityProviders"] == ["FARGATE"]
    # Once the service is gone, FARGATE can go too.
    ecs.delete_service(cluster="cp-use", service="svc", force=True)
    ecs.get_waiter("services_inactive").wait(cluster="cp-use", services=["svc"],
                                             WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    c = ecs.put_cluster_capacity_providers(cluster="cp-use", capacityProviders=[],
                                           defaultCapacityProviderStrategy=[])["cluster"]
    assert c["capacityProviders"] == []


def test_list_tasks_of_unknown_service(ecs):
    ecs.create_cluster(clusterName="lt")
    code, msg = error_of(ecs.list_tasks, cluster="lt", serviceName="ghost")
    assert (code, msg) == ("ServiceNotFoundException", "Service not found.")
    register(ecs, "lt-app")
    ecs.create_service(cluster="lt", serviceName="real", taskDefinition="lt-app",
                       desiredCount=0, networkConfiguration=NET)
    assert ecs.list_tasks(cluster="lt", serviceName="real")["taskArns"] == []
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/lt/real"
    assert ecs.list_tasks(cluster="lt", serviceName=arn)["taskArns"] == []


def test_aws_cli_update_cluster_settings(plane):
    plane.aws("ecs", "create-cluster", "--cluster-name", "cli-insights")
    out = plane.aws("ecs", "update-cluster-settings", "--cluster", "cli-insights",
                    "--settings", "name=containerInsights,value=enabled")
    assert json.loads(out.stdout)["cluster"]["settings"] == [
        {"name": "containerInsights", "value": "enabled"}]
    out = plane.aws("ecs", "put-cluster-capacity-providers", "--cluster", "cli-insights",
                    "--capacity-providers", "FARGATE", "--default-capacity-provider-strategy",
                    "capacityProvider=FARGATE,weight=1")
    assert json.loads(out.stdout)["cluster"]["capacityProviders"] == ["FARGATE"]
    out = plane.aws("ecs", "update-cluster-settings", "--cluster", "nope",
                    "--settings", "name=containerInsights,value=enabled", check=False)
    assert out.returncode == 254
    assert "ClusterNotFoundException" in out.stderr
