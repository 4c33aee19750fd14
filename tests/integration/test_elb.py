"""ELBv2: the Query API through boto3, and the load balancer's data plane with
real HTTP targets on loopback ports."""
import hashlib
import http.client
import http.server
import os
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import pytest

from conftest import ACCOUNT, REGION, free_port

ARN_PREFIX = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:"
FAST_CHECKS = dict(HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2,
                   HealthyThresholdCount=2, UnhealthyThresholdCount=2)


# ---------------------------------------------------------------------------
# Targets: small HTTP servers, each answering with its own name.

class Backend:
    """An HTTP/1.1 keep-alive server on 127.0.0.1 that names itself.

    GET /health answers `health_status`; GET /slow... waits `slow_seconds`;
    POST /echo answers the size and SHA-256 of the body; GET /chunked answers
    a chunked body; anything else answers 200 with the name.
    """

    def __init__(self, name):
        self.name = name
        self.health_status = 200
        self.slow_seconds = 3.0
        self.inflight = 0
        self.seen = []
        self.lock = threading.Lock()
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, body, ctype="text/plain"):
                body = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                with backend.lock:
                    backend.seen.append((self.path, dict(self.headers)))
                if self.path == "/health":
                    self.reply(backend.health_status, "health")
                elif "/slow" in self.path:
                    with backend.lock:
                        backend.inflight += 1
                    time.sleep(backend.slow_seconds)
                    with backend.lock:
                        backend.inflight -= 1
                    self.reply(200, f"{backend.name} slow")
                elif self.path.endswith("/chunked"):
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for part in (b"alpha-", b"beta-", backend.name.encode()):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.reply(200, backend.name)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                digest = hashlib.sha256()
                while length > 0:
                    piece = self.rfile.read(min(length, 1 << 16))
                    if not piece:
                        break
                    digest.update(piece)
                    length -= len(piece)
                self.reply(200, f"{backend.name} {digest.hexdigest()}")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def elb(berthd):
    return berthd.client("elbv2")


@pytest.fixture(scope="module")
def backends():
    made = {name: Backend(name) for name in ("a1", "a2", "b1", "c1", "d1", "d2", "s1")}
    yield made
    for b in made.values():
        b.stop()


def target(backend):
    return {"Id": "127.0.0.1", "Port": backend.port}


def make_lb(elb, name):
    return elb.create_load_balancer(Name=name, Subnets=["subnet-a", "subnet-b"])[
        "LoadBalancers"][0]


def make_tg(elb, name, **kwargs):
    args = dict(Name=name, Protocol="HTTP", Port=80, VpcId="vpc-0123456789abcdef0",
                TargetType="ip", HealthCheckPath="/health", **FAST_CHECKS)
    args.update(kwargs)
    return elb.create_target_group(**args)["TargetGroups"][0]


def health(elb, tg_arn, targets=None):
    kwargs = {"TargetGroupArn": tg_arn}
    if targets is not None:
        kwargs["Targets"] = targets
    out = elb.describe_target_health(**kwargs)["TargetHealthDescriptions"]
    return {(d["Target"]["Id"], d["Target"]["Port"]): d["TargetHealth"] for d in out}


def wait_for(predicate, timeout=30.0, interval=0.2, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def get(port, path="/", headers=None, timeout=10):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def error_of(call, *args, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(*args, **kwargs)
    err = info.value.response
    return err["Error"]["Code"], err["Error"]["Message"], err["ResponseMetadata"]["HTTPStatusCode"]


# ---------------------------------------------------------------------------
# The data plane's fixture: one load balancer routing to several target
# groups, created first so the targets' health checks run while the API
# tests go on.

class Plane:
    pass


@pytest.fixture(scope="module")
def plane(elb, backends):
    p = Plane()
    p.lb = make_lb(elb, "dataplane")
    p.tg_a = make_tg(elb, "dp-a")["TargetGroupArn"]
    p.tg_b = make_tg(elb, "dp-b")["TargetGroupArn"]
    p.tg_none = make_tg(elb, "dp-none")["TargetGroupArn"]
    p.tg_drain = make_tg(elb, "dp-drain")["TargetGroupArn"]
    p.tg_lor = make_tg(elb, "dp-lor")["TargetGroupArn"]
    elb.modify_target_group_attributes(
        TargetGroupArn=p.tg_drain,
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "4"}])
    elb.modify_target_group_attributes(
        TargetGroupArn=p.tg_lor,
        Attributes=[{"Key": "load_balancing.algorithm.type",
                     "Value": "least_outstanding_requests"}])
    elb.register_targets(TargetGroupArn=p.tg_a,
                         Targets=[target(backends["a1"]), target(backends["a2"])])
    elb.register_targets(TargetGroupArn=p.tg_b, Targets=[target(backends["b1"])])
    elb.register_targets(TargetGroupArn=p.tg_none, Targets=[{"Id": "127.0.0.1",
                                                            "Port": free_port()}])
    elb.register_targets(TargetGroupArn=p.tg_drain,
                         Targets=[target(backends["d1"]), target(backends["d2"])])
    elb.register_targets(TargetGroupArn=p.tg_lor,
                         Targets=[target(backends["c1"]), target(backends["s1"])])
    p.port = free_port()
    p.listener = elb.create_listener(
        LoadBalancerArn=p.lb["LoadBalancerArn"], Protocol="HTTP", Port=p.port,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": p.tg_a}])["Listeners"][0]
    rules = [
        (10, [{"Field": "path-pattern", "Values": ["/b/*"]}],
         {"Type": "forward", "TargetGroupArn": p.tg_b}),
        (20, [{"Field": "path-pattern", "Values": ["/none/*"]}],
         {"Type": "forward", "TargetGroupArn": p.tg_none}),
        (30, [{"Field": "path-pattern", "Values": ["/drain/*"]}],
         {"Type": "forward", "TargetGroupArn": p.tg_drain}),
        (40, [{"Field": "path-pattern", "Values": ["/lor/*"]}],
         {"Type": "forward", "TargetGroupArn": p.tg_lor}),
        (50, [{"Field": "host-header", "Values": ["*.example.test"]}],
         {"Type": "fixed-response",
          "FixedResponseConfig": {"StatusCode": "202", "ContentType": "text/plain",
                                  "MessageBody": "fixed answer"}}),
    ]
    for priority, conditions, action in rules:
        elb.create_rule(ListenerArn=p.listener["ListenerArn"], Priority=priority,
                        Conditions=conditions, Actions=[action])
    p.healthy_since = None
    return p


def wait_healthy(elb, tg_arn, count):
    def all_healthy():
        states = [h["State"] for h in health(elb, tg_arn).values()]
        return len(states) == count and all(s == "healthy" for s in states)
    wait_for(all_healthy, timeout=30, what=f"{count} healthy targets in {tg_arn}")


# ---------------------------------------------------------------------------
# API round trips

def test_elbv2_load_balancer_round_trip(elb, plane):
    lb = make_lb(elb, "roundtrip")
    arn = lb["LoadBalancerArn"]
    assert re.fullmatch(ARN_PREFIX + r"loadbalancer/app/roundtrip/[0-9a-f]{16}", arn)
    assert lb["State"] == {"Code": "provisioning"}
    assert re.fullmatch(rf"roundtrip-\d{{10}}\.{REGION}\.elb\.localhost", lb["DNSName"])
    assert lb["Scheme"] == "internet-facing"
    assert lb["Type"] == "application"
    assert [z["SubnetId"] for z in lb["AvailabilityZones"]] == ["subnet-a", "subnet-b"]

    described = elb.describe_load_balancers(Names=["roundtrip"])["LoadBalancers"]
    assert [d["LoadBalancerArn"] for d in described] == [arn]
    assert described[0]["State"]["Code"] == "active"
    elb.get_waiter("load_balancer_available").wait(LoadBalancerArns=[arn])

    # The same name with the same settings gives the same load balancer.
    assert make_lb(elb, "roundtrip")["LoadBalancerArn"] == arn
    code, _, status = error_of(elb.create_load_balancer, Name="roundtrip", Scheme="internal")
    assert (code, status) == ("DuplicateLoadBalancerName", 400)

    attrs = {a["Key"]: a["Value"]
             for a in elb.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]}
    assert attrs["idle_timeout.timeout_seconds"] == "60"
    assert attrs["deletion_protection.enabled"] == "false"
    elb.modify_load_balancer_attributes(
        LoadBalancerArn=arn, Attributes=[{"Key": "deletion_protection.enabled", "Value": "true"}])
    code, msg, _ = error_of(elb.delete_load_balancer, LoadBalancerArn=arn)
    assert code == "OperationNotPermitted" and "deletion protection" in msg
    elb.modify_load_balancer_attributes(
        LoadBalancerArn=arn, Attributes=[{"Key": "deletion_protection.enabled", "Value": "false"}])

    elb.add_tags(ResourceArns=[arn], Tags=[{"Key": "team", "Value": "web"},
                                          {"Key": "env", "Value": "test"}])
    elb.remove_tags(ResourceArns=[arn], TagKeys=["env"])
    tags = elb.describe_tags(ResourceArns=[arn])["TagDescriptions"]
    assert tags == [{"ResourceArn": arn, "Tags": [{"Key": "team", "Value": "web"}]}]

    elb.delete_load_balancer(LoadBalancerArn=arn)
    code, msg, status = error_of(elb.describe_load_balancers, LoadBalancerArns=[arn])
    assert (code, msg, status) == ("LoadBalancerNotFound",
                                   "One or more load balancers not found", 400)
    elb.get_waiter("load_balancers_deleted").wait(LoadBalancerArns=[arn])
    elb.delete_load_balancer(LoadBalancerArn=arn)  # deleting twice succeeds, as in AWS


def test_elbv2_target_group_round_trip(elb, plane):
    tg = elb.create_target_group(Name="tg-defaults", Protocol="HTTP", Port=8080,
                                 VpcId="vpc-1", TargetType="ip")["TargetGroups"][0]
    arn = tg["TargetGroupArn"]
    assert re.fullmatch(ARN_PREFIX + r"targetgroup/tg-defaults/[0-9a-f]{16}", arn)
    assert {k: tg[k] for k in ("HealthCheckIntervalSeconds", "HealthCheckTimeoutSeconds",
                               "HealthyThresholdCount", "UnhealthyThresholdCount",
                               "HealthCheckPath", "HealthCheckPort", "HealthCheckProtocol",
                               "Matcher", "TargetType", "LoadBalancerArns")} == {
        "HealthCheckIntervalSeconds": 30, "HealthCheckTimeoutSeconds": 5,
        "HealthyThresholdCount": 5, "UnhealthyThresholdCount": 2, "HealthCheckPath": "/",
        "HealthCheckPort": "traffic-port", "HealthCheckProtocol": "HTTP",
        "Matcher": {"HttpCode": "200"}, "TargetType": "ip", "LoadBalancerArns": []}

    attrs = {a["Key"]: a["Value"] for a in
             elb.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]}
    assert attrs["deregistration_delay.timeout_seconds"] == "300"
    assert attrs["load_balancing.algorithm.type"] == "round_robin"
    assert attrs["stickiness.enabled"] == "false"
    out = elb.modify_target_group_attributes(
        TargetGroupArn=arn, Attributes=[{"Key": "deregistration_delay.timeout_seconds",
                                         "Value": "30"}])
    assert {"Key": "deregistration_delay.timeout_seconds", "Value": "30"} in out["Attributes"]
    code, msg, _ = error_of(elb.modify_target_group_attributes, TargetGroupArn=arn,
                            Attributes=[{"Key": "no.such.attribute", "Value": "1"}])
    assert code == "ValidationError" and "no.such.attribute" in msg

    modified = elb.modify_target_group(TargetGroupArn=arn, HealthCheckPath="/ping",
                                       Matcher={"HttpCode": "200-299"},
                                       HealthCheckIntervalSeconds=10)["TargetGroups"][0]
    assert (modified["HealthCheckPath"], modified["Matcher"], modified["HealthCheckIntervalSeconds"]
            ) == ("/ping", {"HttpCode": "200-299"}, 10)

    # The plane's groups are in use by its load balancer.
    used = elb.describe_target_groups(TargetGroupArns=[plane.tg_a])["TargetGroups"][0]
    assert used["LoadBalancerArns"] == [plane.lb["LoadBalancerArn"]]
    by_lb = elb.describe_target_groups(LoadBalancerArn=plane.lb["LoadBalancerArn"])
    assert {t["TargetGroupName"] for t in by_lb["TargetGroups"]} == {
        "dp-a", "dp-b", "dp-none", "dp-drain", "dp-lor"}
    pages = list(elb.get_paginator("describe_target_groups").paginate(
        PaginationConfig={"PageSize": 2}))
    names = [t["TargetGroupName"] for page in pages for t in page["TargetGroups"]]
    assert len(pages) >= 3 and names == sorted(names) and "tg-defaults" in names

    elb.delete_target_group(TargetGroupArn=arn)
    code, msg, status = error_of(elb.describe_target_groups, TargetGroupArns=[arn])
    assert (code, msg, status) == ("TargetGroupNotFound",
                                   "One or more target groups not found", 400)


def test_elbv2_listener_and_rule_round_trip(elb, plane):
    lb = make_lb(elb, "rules")
    tg = make_tg(elb, "rules-tg")["TargetGroupArn"]
    port = free_port()
    listener = elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {
            "StatusCode": "404", "ContentType": "text/plain", "MessageBody": "nothing here"}}]
    )["Listeners"][0]
    l_arn = listener["ListenerArn"]
    lb_id = lb["LoadBalancerArn"].rsplit("/", 1)[1]
    assert re.fullmatch(ARN_PREFIX + rf"listener/app/rules/{lb_id}/[0-9a-f]{{16}}", l_arn)
    assert elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] == [listener]
    assert get(port, "/anything")[:2] == (404, "nothing here")

    rule = elb.create_rule(
        ListenerArn=l_arn, Priority=5,
        Conditions=[{"Field": "path-pattern", "Values": ["/api/*"]},
                    {"Field": "host-header", "HostHeaderConfig": {"Values": ["api.test"]}}],
        Actions=[{"Type": "forward", "TargetGroupArn": tg}])["Rules"][0]
    assert re.fullmatch(ARN_PREFIX + rf"listener-rule/app/rules/{lb_id}/"
                        rf"{l_arn.rsplit('/', 1)[1]}/[0-9a-f]{{16}}", rule["RuleArn"])
    assert rule["Priority"] == "5" and rule["IsDefault"] is False
    assert rule["Conditions"][0]["PathPatternConfig"] == {"Values": ["/api/*"]}
    code, msg, status = error_of(
        elb.create_rule, ListenerArn=l_arn, Priority=5,
        Conditions=[{"Field": "path-pattern", "Values": ["/other/*"]}],
        Actions=[{"Type": "forward", "TargetGroupArn": tg}])
    assert (code, msg, status) == ("PriorityInUse", "Priority '5' is currently in use", 400)
    second = elb.create_rule(ListenerArn=l_arn, Priority=7,
                             Conditions=[{"Field": "path-pattern", "Values": ["/x"]}],
                             Actions=[{"Type": "forward", "TargetGroupArn": tg}])["Rules"][0]

    rules = elb.describe_rules(ListenerArn=l_arn)["Rules"]
    assert [r["Priority"] for r in rules] == ["5", "7", "default"]
    assert rules[-1]["IsDefault"] is True and rules[-1]["Actions"] == listener["DefaultActions"]
    code, _, _ = error_of(elb.delete_rule, RuleArn=rules[-1]["RuleArn"])
    assert code == "OperationNotPermitted"

    swapped = elb.set_rule_priorities(RulePriorities=[
        {"RuleArn": rule["RuleArn"], "Priority": 7},
        {"RuleArn": second["RuleArn"], "Priority": 5}])["Rules"]
    assert {r["RuleArn"]: r["Priority"] for r in swapped} == {rule["RuleArn"]: "7",
                                                            second["RuleArn"]: "5"}
    code, _, _ = error_of(elb.set_rule_priorities,
                          RulePriorities=[{"RuleArn": rule["RuleArn"], "Priority": 5}])
    assert code == "PriorityInUse"
    modified = elb.modify_rule(RuleArn=second["RuleArn"], Conditions=[
        {"Field": "path-pattern", "Values": ["/y/*"]}])["Rules"][0]
    assert modified["Conditions"][0]["Values"] == ["/y/*"]

    # A group used by a rule cannot go; once the rule is gone it can.
    code, msg, _ = error_of(elb.delete_target_group, TargetGroupArn=tg)
    assert (code, msg) == ("ResourceInUse", f"Target group '{tg}' is currently in use by a "
                           "listener or a rule")
    elb.delete_rule(RuleArn=rule["RuleArn"])
    elb.delete_rule(RuleArn=second["RuleArn"])
    assert [r["Priority"] for r in elb.describe_rules(ListenerArn=l_arn)["Rules"]] == ["default"]
    elb.delete_target_group(TargetGroupArn=tg)

    # Deleting the listener closes its port.
    elb.delete_listener(ListenerArn=l_arn)
    code, _, _ = error_of(elb.describe_listeners, ListenerArns=[l_arn])
    assert code == "ListenerNotFound"
    wait_for(lambda: _refused(port), timeout=5, what="the listener's port to close")
    elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])


def _refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


# ---------------------------------------------------------------------------
# Errors

def test_elbv2_errors_for_bad_input(elb, plane):
    missing = ARN_PREFIX + "targetgroup/missing/0123456789abcdef"
    for call, kwargs in [
        (elb.describe_target_health, {"TargetGroupArn": missing}),
        (elb.register_targets, {"TargetGroupArn": missing, "Targets": [{"Id": "10.0.0.1"}]}),
        (elb.describe_target_groups, {"TargetGroupArns": [missing]}),
        (elb.modify_target_group, {"TargetGroupArn": missing, "HealthCheckPath": "/x"}),
        (elb.create_rule, {"ListenerArn": plane.listener["ListenerArn"], "Priority": 999,
                           "Conditions": [{"Field": "path-pattern", "Values": ["/q"]}],
                           "Actions": [{"Type": "forward", "TargetGroupArn": missing}]}),
    ]:
        assert error_of(call, **kwargs) == ("TargetGroupNotFound",
                                            "One or more target groups not found", 400)

    # A second listener on a port the load balancer already listens on.
    code, msg, status = error_of(
        elb.create_listener, LoadBalancerArn=plane.lb["LoadBalancerArn"], Protocol="HTTP",
        Port=plane.port, DefaultActions=[{"Type": "forward", "TargetGroupArn": plane.tg_a}])
    assert (code, status) == ("DuplicateListener", 400)
    assert msg == ("A listener already exists on this port for this load balancer '"
                   f"{plane.lb['LoadBalancerArn']}'")

    # A port something else holds cannot be bound: a clear API error.
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        busy = holder.getsockname()[1]
        code, msg, status = error_of(
            elb.create_listener, LoadBalancerArn=plane.lb["LoadBalancerArn"], Protocol="HTTP",
            Port=busy, DefaultActions=[{"Type": "forward", "TargetGroupArn": plane.tg_a}])
        assert (code, status) == ("InvalidConfigurationRequest", 400)
        assert f"Port {busy} cannot be bound on 127.0.0.1" in msg
        assert "in use" in msg
    finally:
        holder.close()
    ports = [listener["Port"] for listener in elb.describe_listeners(
        LoadBalancerArn=plane.lb["LoadBalancerArn"])["Listeners"]]
    assert ports == [plane.port]

    # Health check values outside what AWS allows.
    code, msg, _ = error_of(elb.create_target_group, Name="bad-interval", Protocol="HTTP",
                            Port=80, HealthCheckIntervalSeconds=301)
    assert code == "ValidationError"
    assert msg == ("1 validation error detected: Value '301' at 'healthCheckIntervalSeconds' "
                   "failed to satisfy constraint: Member must have value less than or equal "
                   "to 300")
    assert error_of(elb.create_target_group, Name="bad-timeout", Protocol="HTTP", Port=80,
                    HealthCheckIntervalSeconds=10, HealthCheckTimeoutSeconds=10) == (
        "ValidationError", "Health check interval must be greater than the timeout.", 400)
    code, msg, _ = error_of(elb.create_target_group, Name="bad-matcher", Protocol="HTTP",
                            Port=80, Matcher={"HttpCode": "600"})
    assert code == "ValidationError" and "'600'" in msg
    code, msg, _ = error_of(elb.create_target_group, Name="bad-threshold", Protocol="HTTP",
                            Port=80, HealthyThresholdCount=11)
    assert code == "ValidationError" and "healthyThresholdCount" in msg
    code, msg, _ = error_of(elb.modify_target_group, TargetGroupArn=plane.tg_a,
                            HealthCheckTimeoutSeconds=121)
    assert code == "ValidationError" and "less than or equal to 120" in msg
    code, msg, _ = error_of(elb.create_target_group, Name="-bad-name", Protocol="HTTP", Port=80)
    assert code == "ValidationError" and "-bad-name" in msg

    code, msg, _ = error_of(elb.register_targets, TargetGroupArn=plane.tg_b,
                            Targets=[{"Id": "not-an-ip", "Port": 80}])
    assert (code, msg) == ("ValidationError", "The IP address 'not-an-ip' is not a valid IPv4 "
                                              "address")
    code, _, _ = error_of(elb.describe_listeners)
    assert code == "ValidationError"
    code, _, _ = error_of(elb.describe_listeners,
                          ListenerArns=[plane.listener["ListenerArn"] + "0"])
    assert code == "ListenerNotFound"
    code, _, _ = error_of(elb.delete_rule, RuleArn=plane.listener["ListenerArn"].replace(
        ":listener/", ":listener-rule/") + "/0123456789abcdef")
    assert code == "RuleNotFound"


def _query(berthd, params, sign=True):
    body = "&".join(f"{k}={urllib.parse.quote(v)}" for k, v in params.items())
    req = botocore.awsrequest.AWSRequest(
        method="POST", url=berthd.endpoint + "/", data=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    if sign:
        akid, secret = berthd.credentials()
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(akid, secret),
                                "elasticloadbalancing", REGION).add_auth(req)
    prepared = req.prepare()
    r = urllib.request.Request(prepared.url, data=prepared.body, method="POST",
                               headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_elbv2_query_wire_format(berthd, plane):
    ns = "{http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/}"
    status, body = _query(berthd, {"Action": "DescribeTargetGroups", "Version": "2015-12-01",
                                   "Names.member.1": "dp-a"})
    assert status == 200
    root = ET.fromstring(body)
    assert root.tag == ns + "DescribeTargetGroupsResponse"
    members = root.findall(f"{ns}DescribeTargetGroupsResult/{ns}TargetGroups/{ns}member")
    assert [m.find(ns + "TargetGroupName").text for m in members] == ["dp-a"]
    assert members[0].find(f"{ns}LoadBalancerArns/{ns}member").text == plane.lb["LoadBalancerArn"]
    assert re.fullmatch(r"[0-9a-f-]{36}", root.find(f"{ns}ResponseMetadata/{ns}RequestId").text)

    status, body = _query(berthd, {"Action": "DescribeTargetGroups", "Version": "2015-12-01",
                                   "TargetGroupArns.member.1": ARN_PREFIX + "targetgroup/x/1"})
    assert status == 400
    err = ET.fromstring(body)
    assert err.tag == ns + "ErrorResponse"
    assert [err.find(f"{ns}Error/{ns}{k}").text for k in ("Type", "Code", "Message")] == [
        "Sender", "TargetGroupNotFound", "One or more target groups not found"]
    assert err.find(ns + "RequestId") is not None

    status, body = _query(berthd, {"Action": "NoSuchThing", "Version": "2015-12-01"})
    assert status == 400 and "<Code>InvalidAction</Code>" in body
    status, body = _query(berthd, {"Action": "DescribeLoadBalancers", "Version": "2015-12-01"},
                          sign=False)
    assert status == 403 and "<Code>MissingAuthenticationToken</Code>" in body


# ---------------------------------------------------------------------------
# C16: the target health state machine

def test_elbv2_c16_target_health_state_machine(elb, backends):
    lb = make_lb(elb, "c16")
    tg = make_tg(elb, "c16", HealthCheckPath="/")["TargetGroupArn"]
    elb.modify_target_group_attributes(
        TargetGroupArn=tg, Attributes=[{"Key": "deregistration_delay.timeout_seconds",
                                        "Value": "5"}])
    port = free_port()
    elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
                        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
    web = Backend("c16-web")
    try:
        t = target(web)
        key = (t["Id"], t["Port"])
        registered_at = time.time()
        elb.register_targets(TargetGroupArn=tg, Targets=[t])
        assert health(elb, tg)[key] == {"State": "initial", "Reason": "Elb.RegistrationInProgress",
                                        "Description": "Target registration is in progress"}

        wait_for(lambda: health(elb, tg)[key]["State"] == "healthy", timeout=20,
                 what="the target to become healthy")
        # Healthy only after HealthyThresholdCount (2) passing checks 5 s apart.
        assert time.time() - registered_at >= 5
        assert len([p for p, _ in web.seen if p == "/"]) >= 2
        assert health(elb, tg)[key] == {"State": "healthy"}
        assert get(port, "/")[:2] == (200, "c16-web")

        # Asked about explicitly, a target never registered is unused, not an error.
        never = {"Id": "10.0.0.99", "Port": 80}
        assert health(elb, tg, [never])[("10.0.0.99", 80)] == {
            "State": "unused", "Reason": "Target.NotRegistered",
            "Description": "Target is not registered to the target group"}

        # A group no load balancer uses.
        lonely = make_tg(elb, "c16-lonely")["TargetGroupArn"]
        elb.register_targets(TargetGroupArn=lonely, Targets=[{"Id": "10.0.0.5", "Port": 80}])
        assert health(elb, lonely)[("10.0.0.5", 80)] == {
            "State": "unused", "Reason": "Target.NotInUse",
            "Description": "Target group is not configured to receive traffic from the load "
                           "balancer"}

        elb.deregister_targets(TargetGroupArn=tg, Targets=[t])
        deregistered_at = time.time()
        assert health(elb, tg)[key] == {"State": "draining",
                                        "Reason": "Target.DeregistrationInProgress",
                                        "Description": "Target deregistration is in progress"}
        elb.get_waiter("target_deregistered").wait(
            TargetGroupArn=tg, Targets=[t], WaiterConfig={"Delay": 1, "MaxAttempts": 20})
        assert time.time() - deregistered_at >= 4.5
        assert health(elb, tg, [t])[key] == {
            "State": "unused", "Reason": "Target.NotRegistered",
            "Description": "Target is not registered to the target group"}
        assert health(elb, tg) == {}
        assert get(port, "/")[0] == 503
    finally:
        web.stop()


# ---------------------------------------------------------------------------
# The data plane

def test_elbv2_requests_reach_every_target_round_robin(elb, plane, backends):
    wait_healthy(elb, plane.tg_a, 2)
    names = [get(plane.port, f"/r{i}")[1] for i in range(6)]
    assert sorted(names) == ["a1", "a1", "a1", "a2", "a2", "a2"]
    assert all(names[i] != names[i + 1] for i in range(5)), names

    # One kept-alive client connection still goes round the targets.
    conn = http.client.HTTPConnection("127.0.0.1", plane.port, timeout=10)
    seen = []
    for i in range(4):
        conn.request("GET", f"/keepalive{i}")
        r = conn.getresponse()
        seen.append(r.read().decode())
    conn.close()
    assert sorted(seen) == ["a1", "a1", "a2", "a2"]

    # What the targets see.
    path, headers = [s for s in backends["a1"].seen if s[0].startswith("/r")][-1]
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["X-Forwarded-Port"] == str(plane.port)
    status, _, _ = get(plane.port, "/xff", headers={"X-Forwarded-For": "203.0.113.9"})
    assert status == 200
    xff = [h for p, h in backends["a1"].seen + backends["a2"].seen if p == "/xff"][0]
    assert xff["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"


def test_elbv2_path_and_host_rules(elb, plane):
    wait_healthy(elb, plane.tg_b, 1)
    assert get(plane.port, "/b/thing")[:2] == (200, "b1")
    assert get(plane.port, "/b/deeper/path?q=1")[:2] == (200, "b1")
    assert get(plane.port, "/bee")[1] in ("a1", "a2")
    # Rules go by priority: the host rule (50) comes after the path rule (10).
    status, body, headers = get(plane.port, "/thing", headers={"Host": "shop.EXAMPLE.test:81"})
    assert (status, body, headers["Content-Type"]) == (202, "fixed answer", "text/plain")
    assert get(plane.port, "/b/x", headers={"Host": "shop.example.test"})[:2] == (200, "b1")
    assert get(plane.port, "/thing", headers={"Host": "example.test"})[1] in ("a1", "a2")


def test_elbv2_503_without_a_healthy_target(elb, plane):
    status, body, _ = get(plane.port, "/none/x")
    assert status == 503 and "503 Service Unavailable" in body


def test_elbv2_streams_bodies_both_ways(elb, plane):
    wait_healthy(elb, plane.tg_b, 1)
    payload = bytes(range(256)) * (5 * 4096)  # 5 MiB
    conn = http.client.HTTPConnection("127.0.0.1", plane.port, timeout=30)
    conn.request("POST", "/b/echo", body=payload,
                 headers={"Content-Type": "application/octet-stream"})
    r = conn.getresponse()
    assert (r.status, r.read().decode()) == (200, "b1 " + hashlib.sha256(payload).hexdigest())
    # A chunked answer arrives whole, on the same kept-alive connection.
    conn.request("GET", "/b/chunked")
    r = conn.getresponse()
    assert (r.status, r.getheader("Transfer-Encoding"), r.read()) == (200, "chunked",
                                                                       b"alpha-beta-b1")
    conn.close()


def test_elbv2_unhealthy_target_leaves_rotation(elb, plane, backends):
    wait_healthy(elb, plane.tg_a, 2)
    a2 = (("127.0.0.1", backends["a2"].port))
    backends["a2"].health_status = 500
    wait_for(lambda: health(elb, plane.tg_a)[a2]["State"] == "unhealthy", timeout=20,
             what="a2 to turn unhealthy")
    assert health(elb, plane.tg_a)[a2] == {"State": "unhealthy",
                                           "Reason": "Target.ResponseCodeMismatch",
                                           "Description": "Health checks failed with these "
                                                          "codes: [500]"}
    assert [get(plane.port, f"/u{i}")[1] for i in range(6)] == ["a1"] * 6


def test_elbv2_least_outstanding_requests(elb, plane, backends):
    wait_healthy(elb, plane.tg_lor, 2)
    backends["s1"].slow_seconds = 3.0
    backends["c1"].slow_seconds = 3.0
    # One slow request occupies a target; while it runs, every other request
    # goes to the target with nothing outstanding.
    slow = threading.Thread(target=get, args=(plane.port, "/lor/slow"))
    slow.start()
    wait_for(lambda: backends["s1"].inflight + backends["c1"].inflight == 1, timeout=5,
             what="the slow request to arrive")
    busy = "s1" if backends["s1"].inflight else "c1"
    idle = "c1" if busy == "s1" else "s1"
    assert [get(plane.port, f"/lor/q{i}")[1] for i in range(5)] == [idle] * 5
    assert backends[busy].inflight == 1  # the slow request was out the whole time
    slow.join()


def test_elbv2_deregistration_drains_in_flight_requests(elb, plane, backends):
    wait_healthy(elb, plane.tg_drain, 2)
    results = {}

    def slow_request():
        results["slow"] = get(plane.port, "/drain/slow", timeout=20)

    thread = threading.Thread(target=slow_request)
    thread.start()
    wait_for(lambda: backends["d1"].inflight + backends["d2"].inflight == 1, timeout=5,
             what="the slow request to reach a target")
    busy = backends["d1"] if backends["d1"].inflight else backends["d2"]
    other = backends["d2"] if busy is backends["d1"] else backends["d1"]
    elb.deregister_targets(TargetGroupArn=plane.tg_drain, Targets=[target(busy)])
    assert health(elb, plane.tg_drain)[("127.0.0.1", busy.port)]["State"] == "draining"

    # New requests go to the other target while the slow one finishes.
    wait_for(lambda: all(get(plane.port, "/drain/new")[1] == other.name for _ in range(4)),
             timeout=5, what="new requests to avoid the draining target")
    thread.join()
    assert results["slow"][:2] == (200, f"{busy.name} slow")

    # After the deregistration delay (4 s) the target is gone.
    wait_for(lambda: ("127.0.0.1", busy.port) not in health(elb, plane.tg_drain), timeout=10,
             what="the drained target to leave")
    assert list(health(elb, plane.tg_drain)) == [("127.0.0.1", other.port)]


def test_elbv2_listeners_come_back_after_a_restart(berthd_factory):
    daemon = berthd_factory("elb-restart")
    elb = daemon.client("elbv2")
    lb = make_lb(elb, "survivor")
    port = free_port()
    elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {
            "StatusCode": "200", "ContentType": "text/plain", "MessageBody": "still here"}}])
    assert get(port, "/")[:2] == (200, "still here")
    daemon.restart()
    assert get(port, "/")[:2] == (200, "still here")
    daemon.stop()
    assert _refused(port)


def test_elbv2_aws_cli_and_the_dns_name(berthd):
    out = berthd.aws("elbv2", "create-load-balancer", "--name", "cli-lb", "--subnets", "subnet-1",
                     "subnet-2", "--query", "LoadBalancers[0].[LoadBalancerArn,DNSName]",
                     "--output", "text").stdout.split()
    arn, dns = out
    port = free_port()
    berthd.aws("elbv2", "create-listener", "--load-balancer-arn", arn, "--protocol", "HTTP",
               "--port", str(port), "--default-actions",
               "Type=fixed-response,FixedResponseConfig={StatusCode=200,ContentType=text/plain,"
               "MessageBody=hello-cli}")
    err = berthd.aws("elbv2", "describe-target-groups", "--names", "nope", check=False)
    assert err.returncode != 0 and "TargetGroupNotFound" in err.stderr
    # The DNS name is under .localhost, which curl resolves to the loopback.
    got = subprocess.run(["curl", "-s", f"http://{dns}:{port}/"], capture_output=True, text=True,
                         timeout=30)
    assert got.stdout == "hello-cli"
    berthd.aws("elbv2", "delete-load-balancer", "--load-balancer-arn", arn)


# ---------------------------------------------------------------------------
# ECS services behind the load balancer, with real tasks (busybox httpd) run
# by berthd's own node agent: a task is RUNNING only once its target is
# registered, and a stopping task stays DEACTIVATING while its target drains,
# so no request through the listener fails while tasks come and go.

DRAIN_SECONDS = 3


class RequestLoop:
    """Requests GET / through a listener on a thread of its own, each on a new
    connection with a timeout, until stopped or `limit` seconds have passed;
    keeps every answer body and every failure."""

    def __init__(self, port, limit=90.0):
        self.port = port
        self.limit = limit
        self.bodies = []
        self.failures = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        deadline = time.time() + self.limit
        while not self.done.is_set() and time.time() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("GET", "/")
                r = conn.getresponse()
                body = r.read().decode()
                if r.status == 200:
                    self.bodies.append(body)
                else:
                    self.failures.append((time.time(), r.status, body[:200]))
            except OSError as e:
                self.failures.append((time.time(), type(e).__name__, str(e)))
            finally:
                conn.close()
            time.sleep(0.01)

    def stop(self):
        self.done.set()
        self.thread.join(timeout=30)
        return len(self.bodies) + len(self.failures)


class DrainNode:
    pass


@pytest.fixture(scope="module")
def drain_node(berthd_factory, tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the node agent needs root")
    from test_agent import NET, assert_no_leaks, make_node, register
    b = make_node(berthd_factory, tmp_path_factory, "elb-drain")
    n = DrainNode()
    n.b, n.net = b, NET
    n.ecs, n.elb = b.client("ecs"), b.client("elbv2")
    for rev in ("1", "2"):
        register(b, "drain-web", [{
            "name": "web", "stopTimeout": 2, "portMappings": [{"containerPort": 8080}],
            "environment": [{"name": "REV", "value": rev}],
            "command": ["sh", "-c", "mkdir -p /tmp/w; echo rev$REV $(hostname) > "
                                    "/tmp/w/index.html; exec httpd -f -p 8080 -h /tmp/w"]}])
    lb = make_lb(n.elb, "drain-lb")
    n.tg = make_tg(n.elb, "drain-tg", Port=8080, HealthCheckPath="/")["TargetGroupArn"]
    n.elb.modify_target_group_attributes(
        TargetGroupArn=n.tg, Attributes=[{"Key": "deregistration_delay.timeout_seconds",
                                          "Value": str(DRAIN_SECONDS)}])
    n.port = free_port()
    n.elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=n.port,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": n.tg}])
    n.ecs.create_service(
        cluster="agent", serviceName="drain-web", taskDefinition="drain-web:1", desiredCount=2,
        launchType="FARGATE", networkConfiguration=NET,
        loadBalancers=[{"targetGroupArn": n.tg, "containerName": "web",
                        "containerPort": 8080}])
    yield n
    n.ecs.update_service(cluster="agent", service="drain-web", desiredCount=0)
    n.ecs.delete_service(cluster="agent", service="drain-web")
    n.ecs.get_waiter("services_inactive").wait(cluster="agent", services=["drain-web"],
                                               WaiterConfig={"Delay": 1, "MaxAttempts": 90})
    b.stop()
    assert_no_leaks(b)


def service_tasks(n):
    arns = n.ecs.list_tasks(cluster="agent", serviceName="drain-web")["taskArns"]
    stopped = n.ecs.list_tasks(cluster="agent", serviceName="drain-web",
                               desiredStatus="STOPPED")["taskArns"]
    arns = arns + stopped
    return n.ecs.describe_tasks(cluster="agent", tasks=arns)["tasks"] if arns else []


def wait_serving(n, count, revision, timeout=90):
    """Waits until the service is steady with `count` tasks of `revision`, each
    of them healthy in the target group."""
    seen = {}

    def steady():
        svc = n.ecs.describe_services(cluster="agent", services=["drain-web"])["services"][0]
        states = [h["State"] for h in health(n.elb, n.tg).values()]
        seen.update(deployments=[(d["taskDefinition"], d["rolloutState"], d["runningCount"])
                                 for d in svc["deployments"]],
                    running=svc["runningCount"], targets=states)
        return (len(svc["deployments"]) == 1 and svc["runningCount"] == count
                and svc["taskDefinition"].endswith(f":{revision}")
                and states == ["healthy"] * count)
    try:
        wait_for(steady, timeout=timeout, interval=0.5,
                 what=f"{count} healthy tasks of revision {revision}")
    except AssertionError as e:
        tasks = [(t["taskArn"][-32:], t["taskDefinitionArn"][-1:], t["lastStatus"],
                  t["desiredStatus"], t["containers"][0].get("networkInterfaces"))
                 for t in service_tasks(n)]
        raise AssertionError(f"{e}: {seen} tasks={tasks} targets={health(n.elb, n.tg)}") from None


def test_elbv2_ecs_rolling_deployment_serves_every_request(drain_node):
    n = drain_node
    wait_serving(n, 2, 1)
    old = {t["taskArn"] for t in service_tasks(n) if t["lastStatus"] == "RUNNING"}
    assert len(old) == 2
    loop = RequestLoop(n.port)
    time.sleep(1)
    started = time.time()
    n.ecs.update_service(cluster="agent", service="drain-web", taskDefinition="drain-web:2")

    # Watch the old tasks go: each passes through DEACTIVATING, and while it
    # does its target is draining and its container still runs.
    seen = {arn: [] for arn in old}
    draining_while_deactivating = set()
    deadline = time.time() + 90
    while time.time() < deadline:
        tasks = n.ecs.describe_tasks(cluster="agent", tasks=sorted(old))["tasks"]
        for t in tasks:
            states = seen[t["taskArn"]]
            if not states or states[-1][0] != t["lastStatus"]:
                states.append((t["lastStatus"], time.time()))
            if t["lastStatus"] == "DEACTIVATING":
                assert t["desiredStatus"] == "STOPPED"
                assert t["containers"][0]["lastStatus"] == "RUNNING"
                target = {"Id": t["containers"][0]["networkInterfaces"][0]["privateIpv4Address"],
                          "Port": 8080}
                state = health(n.elb, n.tg, [target])[(target["Id"], 8080)]["State"]
                if state == "draining":
                    draining_while_deactivating.add(t["taskArn"])
        if all(t["lastStatus"] == "STOPPED" for t in tasks):
            break
        time.sleep(0.2)
    wait_serving(n, 2, 2)
    time.sleep(1)
    total = loop.stop()
    took = time.time() - started

    print(f"rolling deployment: {total} requests in {took:.1f} s, "
          f"{len(loop.failures)} failed")
    assert loop.failures == [], loop.failures[:10]
    assert total > 100
    assert any(b.startswith("rev1 ") for b in loop.bodies)
    assert any(b.startswith("rev2 ") for b in loop.bodies)
    assert loop.bodies[-1].startswith("rev2 ")
    for arn, states in seen.items():
        names = [s for s, _ in states]
        assert "DEACTIVATING" in names, (arn, names)
        assert names[-1] == "STOPPED", (arn, names)
        at = dict((s, ts) for s, ts in reversed(states))
        after = [ts for s, ts in states if s in ("STOPPING", "DEPROVISIONING", "STOPPED")]
        # The task is held for the deregistration delay before its agent stops it.
        assert min(after) - at["DEACTIVATING"] >= DRAIN_SECONDS - 1, states
    assert draining_while_deactivating == old
    stopped = n.ecs.describe_tasks(cluster="agent", tasks=sorted(old))["tasks"]
    assert {t["stopCode"] for t in stopped} == {"ServiceSchedulerInitiated"}
    # Drained targets are gone from the group; the new tasks' targets remain.
    running_ips = {t["containers"][0]["networkInterfaces"][0]["privateIpv4Address"]
                   for t in service_tasks(n) if t["lastStatus"] == "RUNNING"}
    assert {ip for ip, _ in health(n.elb, n.tg)} == running_ips


def test_elbv2_ecs_scale_in_drains_the_stopped_task(drain_node):
    n = drain_node
    wait_serving(n, 2, 2)
    loop = RequestLoop(n.port)
    time.sleep(1)
    n.ecs.update_service(cluster="agent", service="drain-web", desiredCount=1)

    victim = None
    states = []
    target_states = []
    deadline = time.time() + 60
    while time.time() < deadline:
        if victim is None:
            going = [t for t in service_tasks(n) if t["desiredStatus"] == "STOPPED"
                     and t["startedBy"] and t.get("stopCode") == "ServiceSchedulerInitiated"
                     and "stoppingAt" in t and t["lastStatus"] != "STOPPED"]
            if going:
                victim = going[0]
            else:
                time.sleep(0.1)
                continue
        t = n.ecs.describe_tasks(cluster="agent", tasks=[victim["taskArn"]])["tasks"][0]
        ip = t["containers"][0]["networkInterfaces"][0]["privateIpv4Address"]
        h = health(n.elb, n.tg, [{"Id": ip, "Port": 8080}])[(ip, 8080)]
        if not states or states[-1][0] != t["lastStatus"]:
            states.append((t["lastStatus"], t["containers"][0]["lastStatus"]))
        if not target_states or target_states[-1] != h["State"]:
            target_states.append(h["State"])
        if t["lastStatus"] == "STOPPED":
            break
        time.sleep(0.2)
    wait_serving(n, 1, 2)
    total = loop.stop()

    print(f"scale-in: {total} requests, {len(loop.failures)} failed; task {states}, "
          f"target {target_states}")
    assert victim is not None
    assert loop.failures == [], loop.failures[:10]
    assert total > 50
    # DEACTIVATING with the container still running, while the target drains;
    # then the container is stopped and the target is gone.
    assert ("DEACTIVATING", "RUNNING") in states, states
    assert states[-1][0] == "STOPPED"
    assert target_states[0] in ("healthy", "draining") and "draining" in target_states
    assert target_states[-1] == "unused"
    assert len(health(n.elb, n.tg)) == 1


def test_elbv2_ecs_drain_finishes_after_a_berthd_restart(drain_node):
    n = drain_node
    n.ecs.update_service(cluster="agent", service="drain-web", desiredCount=2)
    wait_serving(n, 2, 2)
    delay = 10
    n.elb.modify_target_group_attributes(
        TargetGroupArn=n.tg, Attributes=[{"Key": "deregistration_delay.timeout_seconds",
                                          "Value": str(delay)}])
    n.ecs.update_service(cluster="agent", service="drain-web", desiredCount=1)

    def deactivating():
        for t in service_tasks(n):
            if t["lastStatus"] == "DEACTIVATING":
                ip = t["containers"][0]["networkInterfaces"][0]["privateIpv4Address"]
                h = health(n.elb, n.tg, [{"Id": ip, "Port": 8080}])[(ip, 8080)]
                if h["State"] == "draining":
                    return t
        return None
    victim = wait_for(deactivating, timeout=30, interval=0.1, what="a draining task")
    draining_since = time.time()
    ip = victim["containers"][0]["networkInterfaces"][0]["privateIpv4Address"]

    n.b.kill9()
    n.b.start()
    n.ecs, n.elb = n.b.client("ecs"), n.b.client("elbv2")

    # The restarted berthd keeps the task running until the drain ends, then
    # its agent stops it.
    states = []
    deadline = time.time() + 60
    while time.time() < deadline:
        t = n.ecs.describe_tasks(cluster="agent", tasks=[victim["taskArn"]])["tasks"][0]
        if not states or states[-1][0] != t["lastStatus"]:
            states.append((t["lastStatus"], t["containers"][0]["lastStatus"],
                           round(time.time() - draining_since, 1)))
        if t["lastStatus"] == "STOPPED":
            break
        time.sleep(0.2)
    n.elb.modify_target_group_attributes(
        TargetGroupArn=n.tg, Attributes=[{"Key": "deregistration_delay.timeout_seconds",
                                          "Value": str(DRAIN_SECONDS)}])

    print(f"restart while draining: {states}")
    assert states[0][:2] == ("DEACTIVATING", "RUNNING"), states
    assert states[-1][0] == "STOPPED", states
    stopping_at = [s[2] for s in states if s[0] != "DEACTIVATING"][0]
    assert stopping_at >= delay - 2, states
    assert t["stopCode"] == "ServiceSchedulerInitiated"
    assert health(n.elb, n.tg, [{"Id": ip, "Port": 8080}])[(ip, 8080)]["State"] == "unused"
    wait_serving(n, 1, 2)
