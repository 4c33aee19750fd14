"""The berth command-line client against a real berthd.

Images built from Debian's busybox-static (the sample application) are
pushed with `berth image push` from an OCI layout and from a docker-archive,
and pulled back with skopeo; an upload is interrupted on purpose and must
resume; `ps`, `logs`, `stats` and `env` run against real tasks of the real
node agent; errors must be one line with the documented exit codes.
"""
import base64
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import time

import pytest

from conftest import BUILD, ROOT

sys.path.insert(0, os.path.join(ROOT, "examples", "sample_app"))
import build as sample_app  # noqa: E402

BERTH = os.environ.get("BERTH_CLI", os.path.join(BUILD, "berth"))
NET = {"awsvpcConfiguration": {"subnets": ["subnet-cli"]}}
EXEC_ROLE = "arn:aws:iam::000000000000:role/ecsTaskExecutionRole"
TASK_ID = re.compile(r"^[0-9a-f]{32}$")


def berth(b, *args, env=None, timeout=120, check=None):
    """Runs the client against berthd `b` the way a user on the host would."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    e.update({"BERTH_ENDPOINT": b.endpoint, "BERTH_DATA_DIR": b.data_dir})
    e.update(env or {})
    p = subprocess.run([BERTH, *args], env=e, capture_output=True, text=True, timeout=timeout)
    if check is not None:
        assert p.returncode == check, (p.returncode, p.stdout, p.stderr)
    # Never a stack trace or an abort, whatever happened.
    assert "terminate called" not in p.stderr and "Traceback" not in p.stderr
    return p


def registry_password(b):
    token = b.client("ecr").get_authorization_token()["authorizationData"][0][
        "authorizationToken"]
    return base64.b64decode(token).decode().split(":", 1)[1]


def skopeo(b, command, *args):
    """skopeo inspect / copy with registry credentials for berthd `b`."""
    creds = "AWS:" + registry_password(b)
    flag = "--creds" if command == "inspect" else "--src-creds"
    return subprocess.run(["skopeo", command, flag, creds, *args],
                          check=True, capture_output=True, timeout=120)


def inspect_raw(b, ref):
    out = skopeo(b, "inspect", "--raw", "--tls-verify=false", f"docker://localhost:{b.port}/{ref}")
    return out.stdout


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-images")
    oci = str(out / "sample-oci")
    archive = str(out / "sample.tar")
    digests = sample_app.build(oci, archive, tag="v1", repo_tag="sample:v1")
    return {"oci": oci, "archive": archive, **digests}


@pytest.fixture(scope="module")
def reg(berthd_factory):
    b = berthd_factory("cli-registry")
    ecr = b.client("ecr")
    for name in ("cli-app", "cli-resume"):
        ecr.create_repository(repositoryName=name)
    return b


# --- image push ----------------------------------------------------------

def test_cli_image_push_oci_layout_keeps_digests(reg, images, tmp_path):
    p = berth(reg, "image", "push", images["oci"], "cli-app:oci", check=0)
    assert p.stdout == images["manifest_digest"] + "\n"
    # Not a terminal: plain progress lines on stderr, one per blob.
    assert f"layer 1/1 {images['layer_digest'][:19]}: pushing" in p.stderr
    assert f"config {images['config_digest'][:19]}: pushing" in p.stderr
    assert "\r" not in p.stderr
    raw = inspect_raw(reg, "cli-app:oci")
    assert sha256(raw) == images["manifest_digest"]
    with open(os.path.join(images["oci"], "blobs", "sha256",
                           images["manifest_digest"].split(":")[1]), "rb") as f:
        assert raw == f.read()
    # skopeo pulls it back into a layout of its own, verifying every blob.
    dest = str(tmp_path / "pulled")
    skopeo(reg, "copy", "--src-tls-verify=false", f"docker://localhost:{reg.port}/cli-app:oci",
           f"oci:{dest}:back")
    for key in ("layer_digest", "config_digest"):
        assert os.path.exists(os.path.join(dest, "blobs", "sha256", images[key].split(":")[1]))

    # A second push finds every blob there already.
    again = berth(reg, "image", "push", "--quiet", images["oci"] + ":v1", "cli-app:oci2", check=0)
    assert again.stdout == images["manifest_digest"] + "\n"
    assert again.stderr == ""
    loud = berth(reg, "image", "push", images["oci"], "cli-app:oci3", check=0)
    assert loud.stderr.count("already exists") == 2
    tags = reg.client("ecr").list_images(repositoryName="cli-app")["imageIds"]
    assert {t.get("imageTag") for t in tags} >= {"oci", "oci2", "oci3"}


def test_cli_image_push_docker_archive_converts_to_oci(reg, images, tmp_path):
    p = berth(reg, "image", "push", images["archive"], "localhost:1/cli-app:archive", check=0)
    digest = p.stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    raw = inspect_raw(reg, "cli-app:archive")
    assert sha256(raw) == digest
    manifest = json.loads(raw)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    # The config is the archive's own, byte for byte.
    assert manifest["config"]["digest"] == images["config_digest"]
    assert manifest["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"

    dest = str(tmp_path / "pulled")
    skopeo(reg, "copy", "--src-tls-verify=false",
           f"docker://localhost:{reg.port}/cli-app:archive", f"oci:{dest}:back")
    blob = lambda d: os.path.join(dest, "blobs", "sha256", d.split(":")[1])  # noqa: E731
    with open(blob(manifest["config"]["digest"]), "rb") as f:
        config = json.load(f)
    with open(blob(manifest["layers"][0]["digest"]), "rb") as f:
        layer = gzip.decompress(f.read())
    # The gzip layer unpacks to exactly the tar the config's diff_id names.
    assert sha256(layer) == config["rootfs"]["diff_ids"][0]

    # Converting is deterministic: the same archive gives the same digest.
    again = berth(reg, "image", "push", "-q", images["archive"], "cli-app:archive2", check=0)
    assert again.stdout.strip() == digest


def test_cli_image_push_resumes_after_dropped_connection(reg, images, tmp_path):
    chunk = 256 * 1024
    fail_at = chunk + 40000
    p = berth(reg, "image", "push", "--chunk-size", "256KiB", images["oci"], "cli-resume:v1",
              env={"BERTH_CLI_FAIL_AFTER_BYTES": str(fail_at)}, check=0)
    assert p.stdout == images["manifest_digest"] + "\n"
    m = re.search(r"interrupted \((.*)\); resuming at byte (\d+)", p.stderr)
    assert m, p.stderr
    resumed_at = int(m.group(2))
    # The first chunk was complete, and what arrived of the second one was kept.
    assert chunk < resumed_at <= fail_at
    assert p.stderr.count("interrupted") == 1
    dest = str(tmp_path / "pulled")
    skopeo(reg, "copy", "--src-tls-verify=false", f"docker://localhost:{reg.port}/cli-resume:v1",
           f"oci:{dest}:back")
    with open(os.path.join(dest, "blobs", "sha256", images["layer_digest"].split(":")[1]),
              "rb") as f:
        assert sha256(f.read()) == images["layer_digest"]


def test_cli_image_push_errors(reg, images, tmp_path):
    p = berth(reg, "image", "push", images["oci"], "no-such-repo:v1", check=1)
    assert p.stdout == ""
    assert p.stderr == (
        "berth: RepositoryNotFoundException: The repository with name 'no-such-repo' does not "
        "exist in the registry with id '000000000000' (create it first: aws ecr "
        "create-repository --repository-name no-such-repo)\n")
    p = berth(reg, "image", "push", str(tmp_path / "absent"), "cli-app:x", check=1)
    assert p.stderr == f"berth: {tmp_path / 'absent'}: no such file or directory\n"
    p = berth(reg, "image", "push", images["oci"], "Bad:Name", check=1)
    assert p.stderr.startswith("berth: invalid repository name") and p.stderr.count("\n") == 1
    p = berth(reg, "image", "push", "--chunk-size", "lots", images["oci"], "cli-app:x", check=1)
    assert p.stderr == "berth: invalid --chunk-size 'lots'\n"


# --- usage, errors, env --------------------------------------------------

def test_cli_usage_and_help(reg):
    for args in (["--help"], ["image", "--help"], ["image", "push", "--help"], ["ps", "--help"],
                 ["logs", "--help"], ["stats", "--help"], ["top", "--help"], ["env", "--help"]):
        p = berth(reg, *args, check=0)
        assert "Usage:" in p.stdout or "usage:" in p.stdout.lower(), args
    assert "--endpoint-url" in berth(reg, "--help").stdout
    assert "SOURCE" in berth(reg, "image", "push", "--help").stdout
    assert berth(reg, "--version", check=0).stdout.startswith("berth ")
    for args in ([], ["bogus"], ["image"], ["image", "push", "only-one"], ["ps", "--nope"],
                 ["logs"], ["stats", "--interval", "x"]):
        p = berth(reg, *args, check=2)
        assert p.stderr.startswith("berth: ") and p.stderr.count("\n") == 1, (args, p.stderr)
        assert "--help" in p.stderr


def test_cli_errors_are_one_line_with_exit_1(reg, tmp_path):
    p = berth(reg, "ps", "--endpoint-url", "http://127.0.0.1:1", check=1)
    assert p.stderr.startswith("berth: cannot reach berthd at http://127.0.0.1:1: ")
    assert p.stderr.count("\n") == 1
    p = berth(reg, "ps", env={"BERTH_DATA_DIR": str(tmp_path / "none")}, check=1)
    assert p.stderr.startswith("berth: no credentials found (")
    p = berth(reg, "ps", env={"AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG0",
                              "AWS_SECRET_ACCESS_KEY": "x" * 40}, check=1)
    assert p.stderr == ("berth: UnrecognizedClientException: The security token included in "
                        "the request is invalid.\n")
    p = berth(reg, "ps", "--cluster", "no-such-cluster", check=1)
    assert p.stderr == "berth: ClusterNotFoundException: Cluster not found.\n"
    p = berth(reg, "logs", "0123456789abcdef0123456789abcdef", check=1)
    assert p.stderr.startswith("berth: no such task: 0123456789abcdef0123456789abcdef")
    p = berth(reg, "logs", "x", "--since", "soon", check=1)
    assert p.stderr.startswith("berth: invalid --since 'soon'")


def test_cli_env_points_the_aws_cli_at_berth(reg, tmp_path):
    p = berth(reg, "env", check=0)
    lines = p.stdout.splitlines()
    exports = dict(l[len("export "):].split("=", 1) for l in lines if l.startswith("export "))
    assert exports == {
        "BERTH_ENDPOINT": reg.endpoint, "BERTH_DATA_DIR": reg.data_dir,
        "AWS_ENDPOINT_URL": reg.endpoint,
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(reg.data_dir, "credentials"),
        "AWS_CONFIG_FILE": os.path.join(reg.data_dir, "config"),
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
    assert f"#   aws --endpoint-url {reg.endpoint} ecs list-clusters" in lines
    assert p.stderr == ""
    reg.client("ecs").create_cluster(clusterName="env-check")
    # A shell that evaluates the lines reaches berth with the AWS CLI and boto3.
    script = ('eval "$(%s env)" && '
              '/usr/bin/aws --endpoint-url "$BERTH_ENDPOINT" ecs list-clusters '
              '--output text --query "clusterArns[]" && /usr/bin/python3 -c "import boto3, os; '
              'print(boto3.client(\'ecs\', endpoint_url=os.environ[\'BERTH_ENDPOINT\'])'
              '.list_clusters()[\'clusterArns\'])"' % BERTH)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"BERTH_ENDPOINT": reg.endpoint, "BERTH_DATA_DIR": reg.data_dir,
                "HOME": str(tmp_path)})
    out = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("cluster/env-check") == 2
    unset = berth(reg, "env", "--unset", check=0).stdout.splitlines()
    assert "unset AWS_SHARED_CREDENTIALS_FILE" in unset and len(unset) == 7


# --- ps, logs, stats with real tasks ------------------------------------

@pytest.fixture(scope="module")
def node(berthd_factory, images):
    if os.geteuid() != 0:
        pytest.skip("the node agent needs root")
    b = berthd_factory("cli-agent", agent=True)
    b.client("ecr").create_repository(repositoryName="cli-app")
    berth(b, "image", "push", images["archive"], "cli-app:latest", check=0)
    b.client("ecs").create_cluster(clusterName="cli")
    b.client("logs").create_log_group(logGroupName="/ecs/cli")
    yield b
    b.stop()
    from test_agent import assert_no_leaks
    assert_no_leaks(b)


def logged(prefix):
    return {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/cli",
                                                "awslogs-region": "us-east-1",
                                                "awslogs-stream-prefix": prefix}}


def start_task(b, family, container):
    ecs = b.client("ecs")
    ecs.register_task_definition(
        family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256",
        memory="512", executionRoleArn=EXEC_ROLE, containerDefinitions=[container])
    out = ecs.run_task(cluster="cli", taskDefinition=family, launchType="FARGATE",
                       networkConfiguration=NET)
    assert out["failures"] == []
    return out["tasks"][0]["taskArn"]


def wait_for(fn, timeout=60, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_cli_ps_logs_stats_with_real_tasks(node):
    ecs = node.client("ecs")
    # The sample app (pushed from the docker-archive) and a task that spins a cpu.
    web = start_task(node, "cli-web", {"name": "web", "image": "cli-app:latest",
                                       "logConfiguration": logged("web"), "stopTimeout": 2})
    spin = start_task(node, "cli-spin", {
        "name": "spin", "image": "cli-app:latest", "logConfiguration": logged("spin"),
        "entryPoint": ["sh", "-c"], "command": ["echo spinning; while :; do :; done"],
        "stopTimeout": 1})
    ecs.get_waiter("tasks_running").wait(cluster="cli", tasks=[web, spin],
                                         WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    web_id, spin_id = web.rsplit("/", 1)[1], spin.rsplit("/", 1)[1]
    described = {t["taskArn"]: t for t in ecs.describe_tasks(cluster="cli",
                                                              tasks=[web, spin])["tasks"]}

    # ps: both tasks, with their real IPs, sizes and status.
    p = berth(node, "ps", check=0)
    lines = p.stdout.splitlines()
    assert re.split(r"\s{3,}", lines[0]) == ["TASK ID", "CLUSTER", "FAMILY:REV", "LAST STATUS",
                                             "HEALTH", "IP", "CPU/MEM", "AGE"]
    rows = {r[0]: r for r in (re.split(r"\s{3,}", l) for l in lines[1:])}
    assert set(rows) == {web_id, spin_id}
    for arn, family in ((web, "cli-web:1"), (spin, "cli-spin:1")):
        row = rows[arn.rsplit("/", 1)[1]]
        ip = described[arn]["containers"][0]["networkInterfaces"][0]["privateIpv4Address"]
        assert row[1:7] == ["cli", family, "RUNNING", "UNKNOWN", ip, "256/512"]
        assert re.fullmatch(r"\d+s", row[7])
    assert berth(node, "ps", "-q", "--cluster", "cli", check=0).stdout.split() in (
        [spin_id, web_id], [web_id, spin_id])

    # logs: the sample app's own line, by full id, by prefix and by ARN.
    want = f"sample-app: serving task {web_id} on port 80"
    wait_for(lambda: want in berth(node, "logs", web_id, check=0).stdout, 20, "the web log line")
    assert berth(node, "logs", web_id[:10], check=0).stdout.splitlines()[0] == want
    stamped = berth(node, "logs", "-t", web, "--container", "web", "--since", "10m",
                    check=0).stdout.splitlines()[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z " + re.escape(want), stamped)
    assert berth(node, "logs", web_id, "--container", "nope", check=1).stderr.startswith(
        f"berth: task {web_id} has no container nope (containers: web)")

    # stats: the spinning task uses about its quarter of a core; both have the 512 MiB limit.
    p = berth(node, "stats", "--no-stream", check=0)
    lines = p.stdout.splitlines()
    assert re.split(r"\s{3,}", lines[0]) == ["TASK ID", "FAMILY:REV", "CPU %",
                                             "MEM USAGE / LIMIT", "MEM %", "PIDS"]
    stats = {r[0]: r for r in (re.split(r"\s{3,}", l) for l in lines[1:])}
    assert set(stats) == {web_id, spin_id}
    cpu = float(stats[spin_id][2].rstrip("%"))
    assert 10.0 < cpu < 40.0, stats[spin_id]
    assert float(stats[web_id][2].rstrip("%")) < 5.0
    for row in stats.values():
        usage, limit = row[3].split(" / ")
        assert limit == "512MiB" and usage != "0B"
        assert 0.0 < float(row[4].rstrip("%")) < 50.0
        assert int(row[5]) >= 1
    top = berth(node, "top", spin_id[:8], "--interval", "0.5", check=0).stdout.splitlines()
    assert len(top) == 2 and top[1].startswith(spin_id)

    # logs -f follows until the task has stopped and its last lines are in.
    follow = subprocess.Popen([BERTH, "logs", "-f", web_id], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**{k: v for k, v in os.environ.items()
                                      if not k.startswith("AWS_")},
                                   "BERTH_ENDPOINT": node.endpoint,
                                   "BERTH_DATA_DIR": node.data_dir})
    time.sleep(1)
    assert follow.poll() is None
    ecs.stop_task(cluster="cli", task=web, reason="cli test")
    ecs.stop_task(cluster="cli", task=spin, reason="cli test")
    out, err = follow.communicate(timeout=40)
    assert follow.returncode == 0, err
    assert out.splitlines()[0] == want
    assert "sample-app: stopping" in out.splitlines()

    ecs.get_waiter("tasks_stopped").wait(cluster="cli", tasks=[web, spin],
                                         WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    assert berth(node, "ps", check=0).stdout.splitlines()[1:] == []
    stopped = berth(node, "ps", "--all", check=0).stdout
    assert stopped.count("STOPPED") == 2 and web_id in stopped and spin_id in stopped
    p = berth(node, "stats", web_id, check=1)
    assert p.stderr == f"berth: task {web_id} is STOPPED\n"
    # A stopped task's logs are still there.
    assert want in berth(node, "logs", web_id, check=0).stdout
