#!/usr/bin/env python3
"""The AWS Fargate walkthrough, run against berth with unmodified boto3.

Creates an ECR repository and pushes the sample image into it, creates an ECS
cluster, registers a Fargate task definition, puts a load balancer in front of
a service of two tasks, fetches a page through it, prints the tasks' logs,
scales the service up and down, and deletes everything again. Each step
prints its timing; any unexpected answer stops the walkthrough with an error.

    walkthrough.py --endpoint-url http://127.0.0.1:4566

Credentials and region come from the usual AWS variables and files
(AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE point at berth's data dir).
"""
import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
import botocore.config
import botocore.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "sample_app"))
import build as sample_image  # noqa: E402

REPO = "my-ecr-repo"
CLUSTER = "my-ecs-cluster"
FAMILY = "my-ecs-task-definition"
CONTAINER = "my-container"
SERVICE = "my-ecs-service"
LOG_GROUP = "/ecs/my-ecs-task-definition"
NETWORK = {"awsvpcConfiguration": {"subnets": ["subnet-0berth0000000000a"],
                                   "securityGroups": ["sg-0berth00000000000"],
                                   "assignPublicIp": "DISABLED"}}


class Walkthrough:
    def __init__(self, endpoint, listener_port, wait_delay):
        self.endpoint = endpoint
        self.listener_port = listener_port
        self.wait = {"Delay": wait_delay, "MaxAttempts": max(40, int(300 / wait_delay))}
        session = boto3.session.Session()
        cfg = botocore.config.Config(retries={"max_attempts": 2})
        self.region = session.region_name or "us-east-1"
        self.ecr = session.client("ecr", endpoint_url=endpoint, region_name=self.region, config=cfg)
        self.ecs = session.client("ecs", endpoint_url=endpoint, region_name=self.region, config=cfg)
        self.logs = session.client("logs", endpoint_url=endpoint, region_name=self.region,
                                   config=cfg)
        self.elb = session.client("elbv2", endpoint_url=endpoint, region_name=self.region,
                                  config=cfg)
        self.account = "000000000000"
        self.step_no = 0
        self.started = time.monotonic()
        self.results = {}

    def step(self, title, fn):
        self.step_no += 1
        t0 = time.monotonic()
        print(f"[{self.step_no:2d}] {title} ...", flush=True)
        out = fn()
        print(f"     done in {time.monotonic() - t0:.2f}s", flush=True)
        return out

    # -- the walkthrough ---------------------------------------------------

    def create_repository(self):
        repo = self.ecr.create_repository(repositoryName=REPO)["repository"]
        self.account = repo["registryId"]
        print(f"     repositoryUri: {repo['repositoryUri']}")
        self.results["repositoryUri"] = repo["repositoryUri"]
        return repo

    def push_image(self):
        token = self.ecr.get_authorization_token()["authorizationData"][0]
        user, password = base64.b64decode(token["authorizationToken"]).decode().split(":", 1)
        with tempfile.TemporaryDirectory() as tmp:
            layout = os.path.join(tmp, "oci")
            built = sample_image.build(oci_dir=layout)
            dest = f"docker://{self.results['repositoryUri']}:latest"
            subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                            "--dest-creds", f"{user}:{password}", f"oci:{layout}:latest", dest],
                           check=True, timeout=120)
        images = self.ecr.describe_images(repositoryName=REPO)["imageDetails"]
        assert [i["imageDigest"] for i in images] == [built["manifest_digest"]], images
        print(f"     pushed {built['manifest_digest']} as {REPO}:latest")

    def create_cluster(self):
        c = self.ecs.create_cluster(clusterName=CLUSTER)["cluster"]
        assert c["status"] == "ACTIVE"
        print(f"     {c['clusterArn']}")

    def first_mistakes(self):
        try:
            self.ecs.register_task_definition(
                family=FAMILY + "-mistake", requiresCompatibilities=["FARGATE"],
                networkMode="awsvpc",
                containerDefinitions=[{"name": CONTAINER, "image": f"{REPO}:latest"}])
            raise AssertionError("a Fargate task definition without cpu/memory was accepted")
        except botocore.exceptions.ClientError as e:
            err = e.response["Error"]
            assert err["Code"] == "ClientException", err
            print(f"     no task-level cpu/memory -> {err['Code']}: {err['Message']}")
        try:
            self.ecs.create_service(cluster=CLUSTER, serviceName="mistake", taskDefinition=FAMILY,
                                    desiredCount=1, loadBalancer=[])
            raise AssertionError("boto3 accepted loadBalancer=")
        except botocore.exceptions.ParamValidationError as e:
            print("     create_service(loadBalancer=...) -> boto3 ParamValidationError: "
                  + str(e).splitlines()[-1][:100] + "...")
        try:
            self.ecs.create_service(cluster=CLUSTER, serviceName="mistake", taskDefinition=FAMILY,
                                    desiredCount=1, launchType="FARGATE")
            raise AssertionError("a service without networkConfiguration was accepted")
        except botocore.exceptions.ClientError as e:
            err = e.response["Error"]
            assert err["Code"] == "InvalidParameterException", err
            print(f"     no networkConfiguration -> {err['Code']}: {err['Message']}")

    def register_task_definition(self):
        self.logs.create_log_group(logGroupName=LOG_GROUP)
        td = self.ecs.register_task_definition(
            family=FAMILY,
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="256",
            memory="512",
            executionRoleArn=f"arn:aws:iam::{self.account}:role/ecsTaskExecutionRole",
            containerDefinitions=[{
                "name": CONTAINER,
                "image": f"{REPO}:latest",
                "essential": True,
                "portMappings": [{"containerPort": 80, "protocol": "tcp"}],
                "environment": [{"name": "MESSAGE", "value": "hello-from-the-walkthrough"}],
                "logConfiguration": {"logDriver": "awslogs", "options": {
                    "awslogs-group": LOG_GROUP, "awslogs-region": self.region,
                    "awslogs-stream-prefix": "ecs"}},
                "healthCheck": {"command": ["CMD-SHELL", "wget -q -O /dev/null http://localhost/"
                                            " || exit 1"],
                                "interval": 5, "timeout": 2, "retries": 3},
            }])["taskDefinition"]
        print(f"     {td['taskDefinitionArn']} cpu={td['cpu']} memory={td['memory']}")
        self.results["taskDefinitionArn"] = td["taskDefinitionArn"]

    def create_load_balancer(self):
        lb = self.elb.create_load_balancer(Name="my-alb", Type="application",
                                           Subnets=["subnet-0berth0000000000a",
                                                    "subnet-0berth0000000000b"])
        lb = lb["LoadBalancers"][0]
        tg = self.elb.create_target_group(Name="my-targets", Protocol="HTTP", Port=80,
                                          VpcId="vpc-0berth00000000000", TargetType="ip",
                                          HealthCheckPath="/", HealthCheckIntervalSeconds=5,
                                          HealthCheckTimeoutSeconds=2,
                                          HealthyThresholdCount=2)["TargetGroups"][0]
        self.elb.modify_target_group_attributes(
            TargetGroupArn=tg["TargetGroupArn"],
            Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "2"}])
        listener = self.elb.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=self.listener_port,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
        self.results.update(lb=lb["LoadBalancerArn"], tg=tg["TargetGroupArn"],
                            listener=listener["Listeners"][0]["ListenerArn"])
        print(f"     {lb['DNSName']} listening on 127.0.0.1:{self.listener_port}")

    def create_service(self):
        svc = self.ecs.create_service(
            cluster=CLUSTER, serviceName=SERVICE, taskDefinition=FAMILY, desiredCount=2,
            launchType="FARGATE", networkConfiguration=NETWORK,
            loadBalancers=[{"targetGroupArn": self.results["tg"], "containerName": CONTAINER,
                            "containerPort": 80}],
            healthCheckGracePeriodSeconds=10)["service"]
        print(f"     {svc['serviceArn']} desiredCount={svc['desiredCount']}")

    def wait_stable(self):
        self.ecs.get_waiter("services_stable").wait(cluster=CLUSTER, services=[SERVICE],
                                                    WaiterConfig=self.wait)
        arns = self.ecs.list_tasks(cluster=CLUSTER, serviceName=SERVICE)["taskArns"]
        self.ecs.get_waiter("tasks_running").wait(cluster=CLUSTER, tasks=arns,
                                                  WaiterConfig=self.wait)
        tasks = self.ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"]
        for t in tasks:
            ip = t["containers"][0]["networkInterfaces"][0]["privateIpv4Address"]
            print(f"     task {t['taskArn'].rsplit('/', 1)[1]} {t['lastStatus']} at {ip}")
        return tasks

    def fetch_page(self, expect_tasks):
        url = f"http://127.0.0.1:{self.listener_port}/"
        ids = {t["taskArn"].rsplit("/", 1)[1] for t in expect_tasks}
        seen = set()
        deadline = time.monotonic() + 60
        body = ""
        while time.monotonic() < deadline and seen != ids:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    body = r.read().decode()
                first = body.splitlines()[0]
                seen.add(first.rsplit(" ", 1)[-1])
            except OSError:
                time.sleep(0.5)
        print("     " + body.strip().replace("\n", "\n     "))
        assert seen == ids, f"pages named tasks {seen}, expected {ids}"
        print(f"     every running task answered through the load balancer ({len(ids)})")

    def print_logs(self, tasks):
        task_id = tasks[0]["taskArn"].rsplit("/", 1)[1]
        stream = f"ecs/{CONTAINER}/{task_id}"
        deadline = time.monotonic() + 20
        events = []
        while time.monotonic() < deadline:
            events = self.logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream,
                                              startFromHead=True)["events"]
            if any("sample-app: serving task" in e["message"] for e in events):
                break
            time.sleep(0.5)
        for e in events[-5:]:
            print(f"     {stream}: {e['message']}")
        assert any(f"sample-app: serving task {task_id}" in e["message"] for e in events), events

    def scale(self, count):
        self.ecs.update_service(cluster=CLUSTER, service=SERVICE, desiredCount=count)
        tasks = self.wait_stable()
        assert len(tasks) == count, f"{len(tasks)} tasks running, wanted {count}"
        svc = self.ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
        assert svc["runningCount"] == count and svc["desiredCount"] == count, svc
        return tasks

    def clean_up(self):
        self.ecs.update_service(cluster=CLUSTER, service=SERVICE, desiredCount=0)
        self.ecs.delete_service(cluster=CLUSTER, service=SERVICE)
        self.ecs.get_waiter("services_inactive").wait(cluster=CLUSTER, services=[SERVICE],
                                                      WaiterConfig=self.wait)
        self.elb.delete_listener(ListenerArn=self.results["listener"])
        self.elb.delete_target_group(TargetGroupArn=self.results["tg"])
        self.elb.delete_load_balancer(LoadBalancerArn=self.results["lb"])
        self.ecs.deregister_task_definition(taskDefinition=self.results["taskDefinitionArn"])
        running = self.ecs.list_tasks(cluster=CLUSTER)["taskArns"]
        assert running == [], running
        self.ecs.delete_cluster(cluster=CLUSTER)
        self.ecr.delete_repository(repositoryName=REPO, force=True)
        self.logs.delete_log_group(logGroupName=LOG_GROUP)

    def run(self):
        self.step("Create the ECR repository my-ecr-repo", self.create_repository)
        self.step("Push the sample image with skopeo", self.push_image)
        self.step("Create the ECS cluster my-ecs-cluster", self.create_cluster)
        self.step("Register the Fargate task definition", self.register_task_definition)
        self.step("Show what AWS answers to a user's first mistakes", self.first_mistakes)
        self.step("Create a load balancer, target group and listener", self.create_load_balancer)
        self.step("Create the service with 2 tasks behind the load balancer",
                  self.create_service)
        tasks = self.step("Wait with boto3's waiters services_stable and tasks_running",
                          self.wait_stable)
        self.step("Fetch the page through the load balancer", lambda: self.fetch_page(tasks))
        self.step("Print the last log lines of a task", lambda: self.print_logs(tasks))
        tasks = self.step("Scale the service to 3 tasks", lambda: self.scale(3))
        self.step("Fetch the page again", lambda: self.fetch_page(tasks))
        self.step("Scale the service back to 1 task", lambda: self.scale(1))
        self.step("Delete everything", self.clean_up)
        print(f"Walkthrough finished in {time.monotonic() - self.started:.1f}s")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint-url", default=os.environ.get("BERTH_ENDPOINT",
                                                            "http://127.0.0.1:4566"))
    p.add_argument("--listener-port", type=int, default=0,
                   help="port of the load balancer's listener (default: a free one)")
    p.add_argument("--wait-delay", type=int, default=1,
                   help="seconds between waiter polls (AWS's default is 15)")
    args = p.parse_args()
    w = Walkthrough(args.endpoint_url, args.listener_port or free_port(), args.wait_delay)
    try:
        w.run()
    except (AssertionError, botocore.exceptions.ClientError,
            botocore.exceptions.WaiterError, subprocess.CalledProcessError) as e:
        print(f"walkthrough failed at step {w.step_no}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
