"""The foundation: health, SigV4, the JSON 1.1 front, persistence."""
import datetime
import hashlib
import hmac
import json
import os
import subprocess
import urllib.error
import urllib.request

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import pytest

from conftest import BERTHD, REGION

TARGET = "AmazonEC2ContainerServiceV20141113"


def raw(berthd, body, target=f"{TARGET}.ListClusters", sign=True, region=REGION,
        service="ecs", creds=None, date=None, headers=None):
    """Sends a hand-made JSON 1.1 request, signed with botocore's own signer."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    req = botocore.awsrequest.AWSRequest(
        method="POST", url=berthd.endpoint + "/", data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target,
                 **(headers or {})})
    if sign:
        akid, secret = creds or berthd.credentials()
        signer = botocore.auth.SigV4Auth(
            botocore.credentials.Credentials(akid, secret), service, region)
        if date is not None:
            # botocore stamps the current time; patch it for replay tests.
            orig = datetime.datetime
            class Frozen(datetime.datetime):
                @classmethod
                def utcnow(cls):
                    return date
            botocore.auth.datetime.datetime = Frozen
            try:
                signer.add_auth(req)
            finally:
                botocore.auth.datetime.datetime = orig
        else:
            signer.add_auth(req)
    prepared = req.prepare()
    r = urllib.request.Request(prepared.url, data=prepared.body, method="POST",
                               headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"{}")


def test_health_answers_ok(berthd):
    with urllib.request.urlopen(berthd.endpoint + "/_berth/health") as r:
        assert r.status == 200
        body = json.loads(r.read())
    assert body["status"] == "ok"
    assert body["version"]


def test_data_dir_credentials_are_private(berthd):
    st = os.stat(os.path.join(berthd.data_dir, "credentials"))
    assert st.st_mode & 0o777 == 0o600
    akid, secret = berthd.credentials()
    assert akid.startswith("AKIA") and len(akid) == 20
    assert len(secret) == 40
    with open(berthd.log_path) as f:
        assert secret not in f.read()


def test_boto3_create_and_list_clusters(ecs, berthd):
    out = ecs.create_cluster(clusterName="found-a")
    c = out["cluster"]
    assert c["clusterName"] == "found-a"
    assert c["clusterArn"] == f"arn:aws:ecs:{REGION}:000000000000:cluster/found-a"
    assert c["status"] == "ACTIVE"
    assert c["runningTasksCount"] == 0
    arns = ecs.list_clusters()["clusterArns"]
    assert c["clusterArn"] in arns
    # CreateCluster is idempotent for an active cluster.
    again = ecs.create_cluster(clusterName="found-a")["cluster"]
    assert again["clusterArn"] == c["clusterArn"]
    assert ecs.list_clusters()["clusterArns"].count(c["clusterArn"]) == 1


def test_describe_missing_cluster_reports_failure(ecs):
    out = ecs.describe_clusters(clusters=["found-missing"])
    assert out["clusters"] == []
    assert out["failures"] == [{
        "arn": f"arn:aws:ecs:{REGION}:000000000000:cluster/found-missing",
        "reason": "MISSING"}]


def test_delete_cluster(ecs):
    ecs.create_cluster(clusterName="found-del")
    out = ecs.delete_cluster(cluster="found-del")
    assert out["cluster"]["status"] == "INACTIVE"
    assert not any(a.endswith("/found-del") for a in ecs.list_clusters()["clusterArns"])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecs.delete_cluster(cluster="found-del")
    assert e.value.response["Error"]["Code"] == "ClusterNotFoundException"
    assert e.value.response["Error"]["Message"] == "Cluster not found."


def test_list_clusters_pagination(ecs):
    names = [f"found-page-{i:02d}" for i in range(7)]
    for n in names:
        ecs.create_cluster(clusterName=n)
    seen = []
    token = None
    while True:
        kw = {"maxResults": 3}
        if token:
            kw["nextToken"] = token
        page = ecs.list_clusters(**kw)
        assert len(page["clusterArns"]) <= 3
        seen += page["clusterArns"]
        token = page.get("nextToken")
        if not token:
            break
    mine = [a for a in seen if "/found-page-" in a]
    assert sorted(mine) == sorted(f"arn:aws:ecs:{REGION}:000000000000:cluster/{n}" for n in names)
    assert len(seen) == len(set(seen))


def test_aws_cli_with_data_dir_files(berthd):
    berthd.client("ecs").create_cluster(clusterName="found-cli")
    out = berthd.aws("ecs", "list-clusters")
    arns = json.loads(out.stdout)["clusterArns"]
    assert f"arn:aws:ecs:{REGION}:000000000000:cluster/found-cli" in arns


def _count_clusters(ecs):
    return len(ecs.list_clusters()["clusterArns"])


def test_unsigned_request_is_refused(berthd, ecs):
    before = _count_clusters(ecs)
    status, headers, body = raw(berthd, {"clusterName": "found-x"}, target=f"{TARGET}.CreateCluster",
                                sign=False)
    assert status == 400
    assert body == {"__type": "MissingAuthenticationTokenException",
                    "message": "Missing Authentication Token"}
    assert _count_clusters(ecs) == before


def test_unknown_key_is_refused(berthd):
    status, _, body = raw(berthd, {}, creds=("AKIAUNKNOWN000000000", "x" * 40))
    assert status == 400
    assert body["__type"] == "UnrecognizedClientException"
    assert body["message"] == "The security token included in the request is invalid."


def test_wrong_secret_is_refused(berthd):
    akid, _ = berthd.credentials()
    status, _, body = raw(berthd, {}, creds=(akid, "y" * 40))
    assert status == 400
    assert body["__type"] == "InvalidSignatureException"
    assert body["message"].startswith("The request signature we calculated does not match")


def test_other_region_is_refused(berthd):
    status, _, body = raw(berthd, {}, region="eu-west-1")
    assert status == 400
    assert body["__type"] == "InvalidSignatureException"
    assert "region" in body["message"]


def test_replayed_old_signature_is_refused(berthd, ecs):
    before = _count_clusters(ecs)
    old = datetime.datetime.utcnow() - datetime.timedelta(minutes=20)
    status, _, body = raw(berthd, {"clusterName": "found-replay"},
                          target=f"{TARGET}.CreateCluster", date=old)
    assert status == 400
    assert body["__type"] == "InvalidSignatureException"
    assert body["message"].startswith("Signature expired: ")
    assert _count_clusters(ecs) == before


def test_request_without_date_is_refused(berthd):
    # Sign, then drop the date the signature covered.
    akid, secret = berthd.credentials()
    status, _, body = raw(berthd, {}, headers={})
    assert status == 200
    req = urllib.request.Request(
        berthd.endpoint + "/", data=b"{}", method="POST",
        headers={"Content-Type": "application/x-amz-json-1.1",
                 "X-Amz-Target": f"{TARGET}.ListClusters",
                 "Authorization": f"AWS4-HMAC-SHA256 Credential={akid}/20260101/{REGION}/ecs/"
                                  "aws4_request, SignedHeaders=host, Signature=" + "0" * 64})
    try:
        urllib.request.urlopen(req, timeout=10)
        assert False, "expected an error"
    except urllib.error.HTTPError as e:
        assert e.code == 400
        body = json.loads(e.read())
    assert body["__type"] == "IncompleteSignatureException"


@pytest.mark.parametrize("body,code", [
    ("", None),                       # empty body: no input members
    ("{not json", "SerializationException"),
    ("[1, 2]", "SerializationException"),
    ('"text"', "SerializationException"),
])
def test_bodies(berthd, body, code):
    status, headers, out = raw(berthd, body)
    if code is None:
        assert status == 200
        assert "clusterArns" in out
    else:
        assert status == 400
        assert out["__type"] == code
        assert headers.get("x-amzn-RequestId")


def test_wrong_member_type(berthd, ecs):
    before = _count_clusters(ecs)
    status, _, out = raw(berthd, {"clusterName": 42}, target=f"{TARGET}.CreateCluster")
    assert status == 400
    assert out["__type"] == "SerializationException"
    assert "clusterName" in out["message"]
    status, _, out = raw(berthd, {"maxResults": "ten"})
    assert status == 400 and out["__type"] == "SerializationException"
    assert _count_clusters(ecs) == before


def test_missing_required_member(berthd):
    status, _, out = raw(berthd, {}, target=f"{TARGET}.DeleteCluster")
    assert status == 400
    assert out["__type"] == "InvalidParameterException"
    assert out["message"] == ("1 validation error detected: Value null at 'cluster' failed to "
                              "satisfy constraint: Member must not be null")


def test_unknown_members_are_ignored(berthd):
    status, _, out = raw(berthd, {"clusterName": "found-unknown", "someNewMember": {"x": 1}},
                         target=f"{TARGET}.CreateCluster")
    assert status == 200
    assert out["cluster"]["clusterName"] == "found-unknown"


def test_unknown_operation(berthd):
    status, _, out = raw(berthd, {}, target=f"{TARGET}.NoSuchThing")
    assert status == 400
    assert out["__type"] == "UnknownOperationException"


def test_ten_megabyte_body_is_refused(berthd, ecs):
    before = _count_clusters(ecs)
    big = json.dumps({"clusterName": "found-big", "tags": [{"key": "k", "value": "v" * (10 << 20)}]})
    status, _, out = raw(berthd, big, target=f"{TARGET}.CreateCluster")
    assert status == 413
    assert out["__type"] == "RequestEntityTooLargeException"
    assert _count_clusters(ecs) == before


def test_request_id_header(berthd):
    status, headers, _ = raw(berthd, {})
    assert status == 200
    rid = headers.get("x-amzn-RequestId")
    assert rid and len(rid) == 36


def test_clusters_survive_kill9(berthd_factory):
    b = berthd_factory("kill9")
    ecs = b.client("ecs")
    ecs.create_cluster(clusterName="durable-1")
    ecs.create_cluster(clusterName="durable-2")
    ecs.delete_cluster(cluster="durable-2")
    b.kill9()
    b.start()
    ecs = b.client("ecs")
    arns = ecs.list_clusters()["clusterArns"]
    assert arns == [f"arn:aws:ecs:{REGION}:000000000000:cluster/durable-1"]
    assert ecs.describe_clusters(clusters=["durable-2"])["clusters"][0]["status"] == "INACTIVE"
    b.stop()


def test_sigterm_shuts_down_cleanly(berthd_factory):
    b = berthd_factory("sigterm")
    b.stop()
    assert b.proc.returncode == 0
    assert "event=stopped" in b.log_tail()


def test_config_file_and_flags_over_it(berthd_factory, tmp_path):
    conf = tmp_path / "berthd.conf"
    # The region in the file loses to the --region flag the fixture passes; the account id
    # and the (underscored) registry host come from the file.
    conf.write_text("# berthd settings\naccount-id = 111122223333\nregion = eu-west-1\n"
                    "registry_host = registry.internal:5000\n")
    b = berthd_factory("config-file", extra_args=["--config", str(conf)])
    arn = b.client("ecs").create_cluster(clusterName="from-config")["cluster"]["clusterArn"]
    assert arn == f"arn:aws:ecs:{REGION}:111122223333:cluster/from-config"
    repo = b.client("ecr").create_repository(repositoryName="conf")["repository"]
    assert repo["repositoryUri"] == "registry.internal:5000/conf"
    b.stop()


def test_bad_config_file_is_refused(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("metadata-port = fifty\n")
    out = subprocess.run([BERTHD, "serve", "--config", str(conf), "--no-agent"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "bad value for metadata-port: fifty" in out.stderr
