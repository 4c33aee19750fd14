"""The registry: the OCI distribution API under /v2/ and the ECR JSON API.

Real clients (skopeo, podman, the AWS CLI, boto3) push and pull images the
tests build themselves from busybox-static; raw HTTP covers the spec's edge
cases; separate berthd instances cover garbage collection and kill -9.
"""
import base64
import concurrent.futures
import hashlib
import hmac
import http.client
import json
import os
import shutil
import pathlib
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import botocore.exceptions
import pytest
import requests

from conftest import ACCOUNT, REGION
from images import (OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST, build_image,
                    build_index, sha256_digest)

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


# --- helpers ---------------------------------------------------------------

def password_of(ecr):
    data = ecr.get_authorization_token()["authorizationData"][0]
    user, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
    assert user == "AWS"
    return password


class Reg:
    """Raw HTTP against /v2/ with a token as Basic credentials."""

    def __init__(self, b, password):
        self.base = b.endpoint
        self.host = f"localhost:{b.port}"
        self.s = requests.Session()
        self.s.auth = ("AWS", password)

    def url(self, path):
        return path if path.startswith("http") else self.base + path

    def req(self, method, path, **kw):
        return self.s.request(method, self.url(path), allow_redirects=False, timeout=60, **kw)

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def head(self, path, **kw):
        return self.req("HEAD", path, **kw)

    def push_blob(self, repo, data):
        digest = sha256_digest(data)
        r = self.req("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data=data,
                     headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 201, r.text
        assert r.headers["Docker-Content-Digest"] == digest
        return digest

    def put_manifest(self, repo, ref, body, media_type=OCI_MANIFEST):
        return self.req("PUT", f"/v2/{repo}/manifests/{ref}", data=body,
                        headers={"Content-Type": media_type})


def make_manifest(reg, repo, seed, push_config=True, push_layer=True, media=OCI_MANIFEST,
                  extra=None):
    """Pushes a one-layer image's blobs (as asked) and returns (manifest bytes,
    config bytes, layer bytes)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer = b"layer-" + seed.encode() * 50
    if push_config:
        reg.push_blob(repo, config)
    if push_layer:
        reg.push_blob(repo, layer)
    config_type, layer_type = (OCI_CONFIG, OCI_LAYER_GZIP) if media == OCI_MANIFEST else \
        (DOCKER_CONFIG, DOCKER_LAYER)
    doc = {"schemaVersion": 2, "mediaType": media,
           "config": {"mediaType": config_type, "digest": sha256_digest(config),
                      "size": len(config)},
           "layers": [{"mediaType": layer_type, "digest": sha256_digest(layer),
                       "size": len(layer)}]}
    doc.update(extra or {})
    return json.dumps(doc).encode(), config, layer


def skopeo(*args, check=True):
    r = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed:\n{r.stderr}")
    return r


def blob_files(b):
    """Every file under the registry's blob directory, by name."""
    root = os.path.join(b.data_dir, "registry", "blobs")
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            out[n] = os.path.join(dirpath, n)
    return out


def wait_for(predicate, timeout=15, interval=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def error_code(exc_info):
    return exc_info.value.response["Error"]["Code"]


# --- fixtures --------------------------------------------------------------

@pytest.fixture(scope="module")
def ecr(berthd):
    return berthd.client("ecr")


@pytest.fixture(scope="module")
def password(ecr):
    return password_of(ecr)


@pytest.fixture(scope="module")
def reg(berthd, password):
    return Reg(berthd, password)


@pytest.fixture(scope="module")
def spec_repo(ecr):
    ecr.create_repository(repositoryName="spec/edge")
    return "spec/edge"


@pytest.fixture(scope="module")
def gc_berthd(berthd_factory):
    """A berthd that collects every second with a 2 s grace period."""
    return berthd_factory("registry-gc", extra_args=["--registry-gc-interval", "1",
                                                     "--registry-gc-grace", "2"])


# --- authentication --------------------------------------------------------

def test_v2_requires_a_token(berthd, reg, password):
    r = requests.get(berthd.endpoint + "/v2/")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith('Basic realm="')
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"

    ok = reg.get("/v2/")
    assert ok.status_code == 200
    assert ok.headers["Docker-Distribution-API-Version"] == "registry/2.0"

    for auth in [("AWS", password[:-3] + "abc"), ("bob", password),
                 ("AWS", berthd.credentials()[1])]:
        r = requests.get(berthd.endpoint + "/v2/", auth=auth)
        assert r.status_code == 401, auth
        assert "WWW-Authenticate" in r.headers


def forge_token(b, expires, akid="AKIATEST"):
    with open(os.path.join(b.data_dir, "registry", "token.key"), "rb") as f:
        key = f.read()
    payload = f"v1.{int(expires)}.{akid}"
    mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return payload + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def test_expired_token_is_refused(berthd):
    # Tokens are HMACs over their expiry with the data dir's key: one signed
    # with that key but already expired is refused, one still valid is not.
    expired = requests.get(berthd.endpoint + "/v2/",
                           auth=("AWS", forge_token(berthd, time.time() - 5)))
    assert expired.status_code == 401
    assert "expired" in expired.json()["errors"][0]["message"]
    valid = requests.get(berthd.endpoint + "/v2/",
                         auth=("AWS", forge_token(berthd, time.time() + 60)))
    assert valid.status_code == 200


def test_get_authorization_token_shape(berthd, ecr):
    before = time.time()
    data = ecr.get_authorization_token()["authorizationData"]
    assert len(data) == 1
    token = base64.b64decode(data[0]["authorizationToken"]).decode()
    assert token.startswith("AWS:")
    assert abs(data[0]["expiresAt"].timestamp() - (before + 12 * 3600)) < 60
    assert data[0]["proxyEndpoint"] == f"http://localhost:{berthd.port}"


def test_aws_cli_password_logs_skopeo_in(berthd, ecr, tmp_path):
    pw = berthd.aws("ecr", "get-login-password").stdout.strip()
    authfile = str(tmp_path / "auth.json")
    r = subprocess.run(["skopeo", "login", "--authfile", authfile, "--username", "AWS",
                        "--password-stdin", "--tls-verify=false", f"localhost:{berthd.port}"],
                       input=pw, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Login Succeeded" in r.stdout
    bad = subprocess.run(["skopeo", "login", "--authfile", str(tmp_path / "bad.json"),
                          "--username", "AWS", "--password-stdin", "--tls-verify=false",
                          f"localhost:{berthd.port}"],
                         input=pw + "x", capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
    # The stored login is enough to push.
    ecr.create_repository(repositoryName="login/app")
    img = build_image(str(tmp_path / "src"), tag="v1")
    skopeo("copy", "--dest-authfile", authfile, "--dest-tls-verify=false", img.reference,
           f"docker://localhost:{berthd.port}/login/app:v1")
    assert ecr.describe_images(repositoryName="login/app")["imageDetails"][0]["imageDigest"] == \
        img.manifest_digest


# --- real clients ----------------------------------------------------------

def test_skopeo_round_trip_keeps_digests(berthd, ecr, reg, password, tmp_path):
    ecr.create_repository(repositoryName="rt/busybox")
    img = build_image(str(tmp_path / "src"), tag="v1", entrypoint=["/bin/sh", "-c"],
                      cmd=["echo hello"], env=["PATH=/bin", "GREETING=hi"], workdir="/tmp")
    dest = f"docker://localhost:{berthd.port}/rt/busybox:v1"
    skopeo("copy", "--dest-creds", f"AWS:{password}", "--dest-tls-verify=false", img.reference,
           dest)

    got = reg.get("/v2/rt/busybox/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert got.status_code == 200
    assert got.content == img.manifest
    assert got.headers["Docker-Content-Digest"] == img.manifest_digest
    assert got.headers["Content-Type"] == OCI_MANIFEST

    out = tmp_path / "out"
    skopeo("copy", "--src-creds", f"AWS:{password}", "--src-tls-verify=false", dest,
           f"oci:{out}:v1")
    with open(out / "index.json") as f:
        index = json.load(f)
    assert index["manifests"][0]["digest"] == img.manifest_digest
    for digest in [img.config_digest, *img.layer_digests]:
        with open(out / "blobs" / "sha256" / digest.split(":")[1], "rb") as f:
            assert sha256_digest(f.read()) == digest

    detail = ecr.describe_images(repositoryName="rt/busybox")["imageDetails"]
    assert len(detail) == 1
    assert detail[0]["imageTags"] == ["v1"]
    assert detail[0]["imageManifestMediaType"] == OCI_MANIFEST
    layer_size = os.path.getsize(os.path.join(img.layout, "blobs", "sha256",
                                              img.layer_digests[0].split(":")[1]))
    assert detail[0]["imageSizeInBytes"] == layer_size


def test_multi_arch_index_round_trip(berthd, ecr, reg, password, tmp_path):
    ecr.create_repository(repositoryName="rt/multi")
    digest, index_bytes, images = build_index(str(tmp_path / "src"), tag="multi")
    dest = f"docker://localhost:{berthd.port}/rt/multi:v1"
    skopeo("copy", "--all", "--dest-creds", f"AWS:{password}", "--dest-tls-verify=false",
           f"oci:{tmp_path / 'src'}:multi", dest)

    got = reg.get("/v2/rt/multi/manifests/v1", headers={"Accept": OCI_INDEX})
    assert got.status_code == 200
    assert got.headers["Content-Type"] == OCI_INDEX
    assert got.headers["Docker-Content-Digest"] == digest
    assert got.content == index_bytes
    for img in images:
        child = reg.get(f"/v2/rt/multi/manifests/{img.manifest_digest}",
                        headers={"Accept": OCI_MANIFEST})
        assert child.status_code == 200 and child.content == img.manifest

    out = tmp_path / "out"
    skopeo("copy", "--all", "--src-creds", f"AWS:{password}", "--src-tls-verify=false", dest,
           f"oci:{out}:v1")
    with open(out / "index.json") as f:
        assert json.load(f)["manifests"][0]["digest"] == digest

    details = {d["imageDigest"]: d for d in
               ecr.describe_images(repositoryName="rt/multi")["imageDetails"]}
    assert set(details) == {digest, *[i.manifest_digest for i in images]}
    assert details[digest]["imageTags"] == ["v1"]
    assert details[digest]["imageManifestMediaType"] == OCI_INDEX
    assert details[digest]["imageSizeInBytes"] == max(
        details[i.manifest_digest]["imageSizeInBytes"] for i in images)
    # A manifest the index lists cannot be deleted from under it.
    out = ecr.batch_delete_image(repositoryName="rt/multi",
                                 imageIds=[{"imageDigest": images[0].manifest_digest}])
    assert out["imageIds"] == []
    assert out["failures"][0]["failureCode"] == "ImageReferencedByManifestList"
    assert digest in out["failures"][0]["failureReason"]


def test_same_layer_in_two_repositories_is_stored_once(berthd, ecr, reg, password, tmp_path):
    img = build_image(str(tmp_path / "src"), tag="v1", files={"etc/shared": "one copy\n"})
    for name in ("share/a", "share/b"):
        ecr.create_repository(repositoryName=name)
    skopeo("copy", "--dest-creds", f"AWS:{password}", "--dest-tls-verify=false", img.reference,
           f"docker://localhost:{berthd.port}/share/a:v1")
    before = blob_files(berthd)
    layer_hex = img.layer_digests[0].split(":")[1]
    assert layer_hex in before
    skopeo("copy", "--dest-creds", f"AWS:{password}", "--dest-tls-verify=false", img.reference,
           f"docker://localhost:{berthd.port}/share/b:v1")
    after = blob_files(berthd)
    assert after == before
    for name in ("share/a", "share/b"):
        r = reg.head(f"/v2/{name}/blobs/{img.layer_digests[0]}")
        assert r.status_code == 200
        assert int(r.headers["Content-Length"]) == os.path.getsize(before[layer_hex])


def test_podman_push_and_pull(berthd, ecr, reg, password, tmp_path):
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    # podman refuses run roots longer than 50 characters: keep it short.
    root = pathlib.Path(tempfile.mkdtemp(prefix="berth-pod-", dir="/tmp"))
    base = ["podman", "--root", str(root / "root"), "--runroot", str(root / "run"),
            "--storage-driver", "vfs", "--cgroup-manager=cgroupfs", "--events-backend=file"]

    def podman(*args):
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=180)

    img = build_image(str(tmp_path / "src"), tag="v1", cmd=["echo", "from podman"])
    ecr.create_repository(repositoryName="pod/app")
    try:
        pulled = podman("pull", img.reference)
        if pulled.returncode != 0:
            pytest.skip("podman cannot pull an OCI layout on this machine: " +
                        pulled.stderr.strip()[-300:])
        ref = f"localhost:{berthd.port}/pod/app:p1"
        digest_file = tmp_path / "digest"
        pushed = podman("push", "--tls-verify=false", "--creds", f"AWS:{password}",
                        "--digestfile", str(digest_file), pulled.stdout.strip().splitlines()[-1],
                        ref)
        assert pushed.returncode == 0, pushed.stderr
        got = reg.head("/v2/pod/app/manifests/p1",
                       headers={"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"})
        assert got.status_code == 200
        assert got.headers["Docker-Content-Digest"] == digest_file.read_text().strip()

        assert podman("rmi", "-a", "-f").returncode == 0
        again = podman("pull", "--tls-verify=false", "--creds", f"AWS:{password}", ref)
        assert again.returncode == 0, again.stderr
        inspect = podman("image", "inspect", ref)
        assert inspect.returncode == 0, inspect.stderr
        digests = json.loads(inspect.stdout)[0]["RepoDigests"]
        assert f"localhost:{berthd.port}/pod/app@{got.headers['Docker-Content-Digest']}" in digests
        denied = podman("pull", "--tls-verify=false", "--creds", "AWS:wrong", ref)
        assert denied.returncode != 0
    finally:
        podman("rmi", "-a", "-f")
        shutil.rmtree(root, ignore_errors=True)


def test_concurrent_pushes_of_one_blob_and_one_immutable_tag(berthd, ecr, reg):
    names = [f"race/r{i}" for i in range(4)]
    for n in names:
        ecr.create_repository(repositoryName=n, imageTagMutability="IMMUTABLE")
    data = os.urandom(3 << 20)
    digest = sha256_digest(data)

    def push(repo):
        s = requests.Session()
        s.auth = reg.s.auth
        return s.post(f"{reg.base}/v2/{repo}/blobs/uploads/?digest={digest}", data=data,
                      timeout=60).status_code

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert list(pool.map(push, names)) == [201] * 4
    path = blob_files(berthd)[digest.split(":")[1]]
    with open(path, "rb") as f:
        assert f.read() == data
    # Racing pushes of different images to one new tag: exactly one wins.
    bodies = [make_manifest(reg, "race/r0", f"racer-{i}")[0] for i in range(4)]

    def put(body):
        s = requests.Session()
        s.auth = reg.s.auth
        return s.put(f"{reg.base}/v2/race/r0/manifests/contended", data=body, timeout=60,
                     headers={"Content-Type": OCI_MANIFEST}).status_code

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(put, bodies))
    assert sorted(codes) == [201, 400, 400, 400]
    winner = bodies[codes.index(201)]
    assert reg.get("/v2/race/r0/manifests/contended").content == winner


# --- the distribution spec's edge cases ------------------------------------

def test_chunked_upload_in_order_and_416_out_of_order(reg, spec_repo):
    start = reg.req("POST", f"/v2/{spec_repo}/blobs/uploads/")
    assert start.status_code == 202
    loc = start.headers["Location"]
    assert loc.startswith(f"/v2/{spec_repo}/blobs/uploads/")
    assert start.headers["Range"] == "0-0"
    assert start.headers["Docker-Upload-UUID"] == loc.rsplit("/", 1)[1]

    data = bytes(range(30))
    octet = {"Content-Type": "application/octet-stream"}
    r = reg.req("PATCH", loc, data=data[:10], headers={**octet, "Content-Range": "0-9"})
    assert r.status_code == 202
    assert r.headers["Range"] == "0-9"
    loc = r.headers["Location"]

    gap = reg.req("PATCH", loc, data=data[20:30], headers={**octet, "Content-Range": "20-29"})
    assert gap.status_code == 416
    assert gap.headers["Range"] == "0-9"
    assert gap.headers["Location"] == loc
    assert gap.json()["errors"][0]["code"] == "RANGE_INVALID"
    overlap = reg.req("PATCH", loc, data=data[5:15], headers={**octet, "Content-Range": "5-14"})
    assert overlap.status_code == 416
    garbage = reg.req("PATCH", loc, data=data[10:20], headers={**octet, "Content-Range": "ten"})
    assert garbage.status_code == 416

    status = reg.get(loc)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-9"

    r = reg.req("PATCH", loc, data=data[10:20], headers={**octet, "Content-Range": "10-19"})
    assert r.status_code == 202 and r.headers["Range"] == "0-19"
    digest = sha256_digest(data)
    done = reg.req("PUT", f"{loc}?digest={digest}", data=data[20:],
                   headers={**octet, "Content-Range": "20-29"})
    assert done.status_code == 201
    assert done.headers["Location"] == f"/v2/{spec_repo}/blobs/{digest}"
    assert done.headers["Docker-Content-Digest"] == digest
    assert reg.get(f"/v2/{spec_repo}/blobs/{digest}").content == data
    assert reg.get(loc).status_code == 404


def test_blob_head_get_and_ranges(reg, spec_repo):
    data = b"0123456789abcdef"
    digest = reg.push_blob(spec_repo, data)
    head = reg.head(f"/v2/{spec_repo}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))
    assert head.headers["Docker-Content-Digest"] == digest
    assert head.content == b""
    part = reg.get(f"/v2/{spec_repo}/blobs/{digest}", headers={"Range": "bytes=2-5"})
    assert part.status_code == 206
    assert part.content == b"2345"
    assert part.headers["Content-Range"] == f"bytes 2-5/{len(data)}"
    tail = reg.get(f"/v2/{spec_repo}/blobs/{digest}", headers={"Range": "bytes=-3"})
    assert tail.status_code == 206 and tail.content == b"def"
    beyond = reg.get(f"/v2/{spec_repo}/blobs/{digest}", headers={"Range": "bytes=100-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(data)}"
    missing = reg.get(f"/v2/{spec_repo}/blobs/sha256:{'0' * 64}")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    bad = reg.get(f"/v2/{spec_repo}/blobs/sha256:xyz")
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["code"] == "DIGEST_INVALID"


def test_cross_repository_mount(ecr, reg, spec_repo):
    ecr.create_repository(repositoryName="spec/mount-target")
    ecr.create_repository(repositoryName="spec/empty")
    data = b"blob to mount"
    digest = reg.push_blob(spec_repo, data)
    target = "spec/mount-target"
    assert reg.head(f"/v2/{target}/blobs/{digest}").status_code == 404
    # The source repository does not hold it: an ordinary upload starts instead.
    fallback = reg.req("POST", f"/v2/{target}/blobs/uploads/?mount={digest}&from=spec/empty")
    assert fallback.status_code == 202
    assert "/blobs/uploads/" in fallback.headers["Location"]
    reg.req("DELETE", fallback.headers["Location"])
    mounted = reg.req("POST", f"/v2/{target}/blobs/uploads/?mount={digest}&from={spec_repo}")
    assert mounted.status_code == 201
    assert mounted.headers["Location"] == f"/v2/{target}/blobs/{digest}"
    assert mounted.headers["Docker-Content-Digest"] == digest
    assert reg.get(f"/v2/{target}/blobs/{digest}").content == data


def test_head_on_missing_manifest(reg, spec_repo):
    r = reg.head(f"/v2/{spec_repo}/manifests/no-such-tag")
    assert r.status_code == 404
    assert r.content == b""
    r = reg.head(f"/v2/{spec_repo}/manifests/sha256:{'1' * 64}")
    assert r.status_code == 404
    g = reg.get(f"/v2/{spec_repo}/manifests/no-such-tag")
    assert g.status_code == 404
    assert g.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_delete_by_tag_versus_by_digest(reg, spec_repo):
    body, _, _ = make_manifest(reg, spec_repo, "deletes")
    digest = sha256_digest(body)
    for tag in ("keep", "drop"):
        assert reg.put_manifest(spec_repo, tag, body).status_code == 201
    assert reg.req("DELETE", f"/v2/{spec_repo}/manifests/drop").status_code == 202
    assert reg.head(f"/v2/{spec_repo}/manifests/drop").status_code == 404
    assert reg.head(f"/v2/{spec_repo}/manifests/keep").status_code == 200
    assert reg.head(f"/v2/{spec_repo}/manifests/{digest}").status_code == 200
    assert reg.req("DELETE", f"/v2/{spec_repo}/manifests/drop").status_code == 404

    assert reg.req("DELETE", f"/v2/{spec_repo}/manifests/{digest}").status_code == 202
    assert reg.head(f"/v2/{spec_repo}/manifests/{digest}").status_code == 404
    assert reg.head(f"/v2/{spec_repo}/manifests/keep").status_code == 404
    tags = reg.get(f"/v2/{spec_repo}/tags/list").json()["tags"]
    assert "keep" not in tags and "drop" not in tags
    missing = reg.req("DELETE", f"/v2/{spec_repo}/manifests/{digest}")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_tags_and_catalog_pagination(ecr, reg):
    repo = "spec/pages"
    ecr.create_repository(repositoryName=repo)
    body, _, _ = make_manifest(reg, repo, "pages")
    for tag in ("e", "a", "c", "b", "d"):
        assert reg.put_manifest(repo, tag, body).status_code == 201
    assert reg.get(f"/v2/{repo}/tags/list").json() == {"name": repo,
                                                        "tags": ["a", "b", "c", "d", "e"]}
    first = reg.get(f"/v2/{repo}/tags/list?n=2")
    assert first.json()["tags"] == ["a", "b"]
    assert first.headers["Link"] == f'</v2/{repo}/tags/list?last=b&n=2>; rel="next"'
    second = reg.get(first.headers["Link"].split(";")[0].strip("<>"))
    assert second.json()["tags"] == ["c", "d"]
    third = reg.get(second.headers["Link"].split(";")[0].strip("<>"))
    assert third.json()["tags"] == ["e"]
    assert "Link" not in third.headers
    assert reg.get(f"/v2/{repo}/tags/list?n=0").json()["tags"] == []
    assert reg.get(f"/v2/{repo}/tags/list?last=c").json()["tags"] == ["d", "e"]
    assert reg.get(f"/v2/{repo}/tags/list?n=x").status_code == 400

    names = []
    url = "/v2/_catalog?n=1"
    while url:
        r = reg.get(url)
        assert r.status_code == 200
        got = r.json()["repositories"]
        assert len(got) <= 1
        names += got
        url = r.headers.get("Link", "").split(";")[0].strip("<>") or None
    listed = {r["repositoryName"] for page in
              ecr.get_paginator("describe_repositories").paginate() for r in page["repositories"]}
    assert names == sorted(names)
    assert set(names) == listed


def test_referrers_api(reg, spec_repo):
    subject, _, _ = make_manifest(reg, spec_repo, "subject")
    subject_digest = sha256_digest(subject)
    assert reg.put_manifest(spec_repo, "subject", subject).status_code == 201
    empty_config = b"{}"
    reg.push_blob(spec_repo, empty_config)
    sbom = reg.push_blob(spec_repo, b'{"sbom": true}')
    artifact = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": sha256_digest(empty_config), "size": 2},
        "layers": [{"mediaType": "application/json", "digest": sbom, "size": 14}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": len(subject)},
        "annotations": {"org.example.kind": "sbom"},
    }).encode()
    put = reg.put_manifest(spec_repo, sha256_digest(artifact), artifact)
    assert put.status_code == 201
    assert put.headers["OCI-Subject"] == subject_digest

    r = reg.get(f"/v2/{spec_repo}/referrers/{subject_digest}")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == OCI_INDEX
    index = r.json()
    assert index["mediaType"] == OCI_INDEX and index["schemaVersion"] == 2
    assert index["manifests"] == [{
        "mediaType": OCI_MANIFEST, "digest": sha256_digest(artifact), "size": len(artifact),
        "artifactType": "application/vnd.example.sbom+json",
        "annotations": {"org.example.kind": "sbom"}}]
    filtered = reg.get(f"/v2/{spec_repo}/referrers/{subject_digest}?artifactType=text/other")
    assert filtered.json()["manifests"] == []
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    nothing = reg.get(f"/v2/{spec_repo}/referrers/sha256:{'2' * 64}")
    assert nothing.status_code == 200 and nothing.json()["manifests"] == []
    assert reg.get(f"/v2/{spec_repo}/referrers/sha256:nope").status_code == 400


def test_manifest_content_negotiation(reg, spec_repo):
    oci, _, _ = make_manifest(reg, spec_repo, "negotiate")
    assert reg.put_manifest(spec_repo, "oci", oci).status_code == 201
    docker, _, _ = make_manifest(reg, spec_repo, "negotiate-docker", media=DOCKER_MANIFEST)
    assert reg.put_manifest(spec_repo, "docker", docker, DOCKER_MANIFEST).status_code == 201

    refused = reg.get(f"/v2/{spec_repo}/manifests/oci", headers={"Accept": DOCKER_MANIFEST})
    assert refused.status_code == 404
    assert refused.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    ok = reg.get(f"/v2/{spec_repo}/manifests/oci",
                 headers={"Accept": f"{DOCKER_MANIFEST}, {OCI_MANIFEST}"})
    assert ok.status_code == 200 and ok.headers["Content-Type"] == OCI_MANIFEST
    d = reg.get(f"/v2/{spec_repo}/manifests/docker", headers={"Accept": DOCKER_MANIFEST})
    assert d.status_code == 200
    assert d.headers["Content-Type"] == DOCKER_MANIFEST
    assert d.headers["Docker-Content-Digest"] == sha256_digest(docker)
    # A Content-Type that contradicts the body's mediaType is refused.
    wrong = reg.put_manifest(spec_repo, "wrong", oci, DOCKER_MANIFEST)
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["code"] == "MANIFEST_INVALID"
    junk = reg.put_manifest(spec_repo, "junk", b"{not json")
    assert junk.status_code == 400 and junk.json()["errors"][0]["code"] == "MANIFEST_INVALID"
    bad_tag = reg.put_manifest(spec_repo, "-bad", oci)
    assert bad_tag.status_code == 400 and bad_tag.json()["errors"][0]["code"] == "TAG_INVALID"


def test_upload_cancel_and_unknown_names(reg, spec_repo):
    loc = reg.req("POST", f"/v2/{spec_repo}/blobs/uploads/").headers["Location"]
    assert reg.req("DELETE", loc).status_code == 204
    gone = reg.get(loc)
    assert gone.status_code == 404
    assert gone.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    assert reg.req("PATCH", loc, data=b"x").status_code == 404

    unknown = reg.get("/v2/no-such-repo/tags/list")
    assert unknown.status_code == 404
    err = unknown.json()["errors"][0]
    assert err["code"] == "NAME_UNKNOWN"
    assert err["message"] == ("The repository with name 'no-such-repo' does not exist in the "
                              f"registry with id '{ACCOUNT}'")
    push = reg.req("POST", "/v2/no-such-repo/blobs/uploads/")
    assert push.status_code == 404
    invalid = reg.get("/v2/Upper_Case/tags/list")
    assert invalid.status_code == 400
    assert invalid.json()["errors"][0]["code"] == "NAME_INVALID"


# --- the public cases ------------------------------------------------------

def test_c17_immutable_tags_on_both_surfaces(ecr, reg):
    ecr.create_repository(repositoryName="c17", imageTagMutability="IMMUTABLE")
    m1, _, _ = make_manifest(reg, "c17", "m1")
    m2, _, _ = make_manifest(reg, "c17", "m2")
    ecr.put_image(repositoryName="c17", imageManifest=m1.decode(), imageTag="A")
    ecr.put_image(repositoryName="c17", imageManifest=m2.decode(), imageTag="B")

    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.put_image(repositoryName="c17", imageManifest=m2.decode(), imageTag="A")
    assert error_code(e) == "ImageTagAlreadyExistsException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert e.value.response["Error"]["Message"] == (
        "The image tag 'A' already exists in the 'c17' repository and cannot be overwritten "
        "because the repository is immutable.")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.put_image(repositoryName="c17", imageManifest=m1.decode(), imageTag="A")
    assert error_code(e) == "ImageAlreadyExistsException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    ecr.put_image(repositoryName="c17", imageManifest=m1.decode(), imageTag="C")
    details = ecr.describe_images(repositoryName="c17",
                                  imageIds=[{"imageDigest": sha256_digest(m1)}])["imageDetails"]
    assert sorted(details[0]["imageTags"]) == ["A", "C"]

    r = reg.put_manifest("c17", "B", m1)
    assert r.status_code == 400
    err = r.json()["errors"][0]
    assert err["code"] == "TAG_INVALID"
    assert "already exists" in err["message"] and "immutable" in err["message"]
    # Re-pushing the very same image to an existing tag is refused as well.
    same = reg.put_manifest("c17", "B", m2)
    assert same.status_code == 400 and same.json()["errors"][0]["code"] == "TAG_INVALID"
    assert reg.get("/v2/c17/manifests/B").headers["Docker-Content-Digest"] == sha256_digest(m2)

    # Control: a mutable repository moves the tag.
    ecr.create_repository(repositoryName="c17m")
    m1, _, _ = make_manifest(reg, "c17m", "m1")
    m2, _, _ = make_manifest(reg, "c17m", "m2")
    ecr.put_image(repositoryName="c17m", imageManifest=m1.decode(), imageTag="A")
    ecr.put_image(repositoryName="c17m", imageManifest=m1.decode(), imageTag="C")
    ecr.put_image(repositoryName="c17m", imageManifest=m2.decode(), imageTag="A")
    tags = {d["imageDigest"]: sorted(d.get("imageTags", [])) for d in
            ecr.describe_images(repositoryName="c17m")["imageDetails"]}
    assert tags == {sha256_digest(m1): ["C"], sha256_digest(m2): ["A"]}
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.put_image(repositoryName="c17m", imageManifest=m2.decode(), imageTag="A")
    assert error_code(e) == "ImageAlreadyExistsException"


def test_c18_images_are_per_digest(ecr, reg):
    ecr.create_repository(repositoryName="c18")
    m1, _, _ = make_manifest(reg, "c18", "m1")
    m2, _, _ = make_manifest(reg, "c18", "m2")
    d1, d2 = sha256_digest(m1), sha256_digest(m2)
    ecr.put_image(repositoryName="c18", imageManifest=m1.decode(), imageTag="a")
    ecr.put_image(repositoryName="c18", imageManifest=m1.decode(), imageTag="b")
    ecr.put_image(repositoryName="c18", imageManifest=m2.decode(), imageTag="z")

    details = ecr.describe_images(repositoryName="c18")["imageDetails"]
    assert len(details) == 2
    by_digest = {d["imageDigest"]: d for d in details}
    assert sorted(by_digest[d1]["imageTags"]) == ["a", "b"]
    assert by_digest[d2]["imageTags"] == ["z"]
    for d in details:
        assert d["imageSizeInBytes"] > 0
        assert d["imagePushedAt"].year >= 2024
        assert d["imageManifestMediaType"] == OCI_MANIFEST

    out = ecr.batch_delete_image(repositoryName="c18", imageIds=[{"imageTag": "a"}])
    assert out["imageIds"] == [{"imageDigest": d1, "imageTag": "a"}]
    assert out["failures"] == []
    still = ecr.describe_images(repositoryName="c18", imageIds=[{"imageDigest": d1}])
    assert still["imageDetails"][0]["imageTags"] == ["b"]

    out = ecr.batch_delete_image(repositoryName="c18",
                                 imageIds=[{"imageTag": "b"}, {"imageTag": "nope"}])
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert out["imageIds"] == [{"imageDigest": d1, "imageTag": "b"}]
    assert out["failures"] == [{"imageId": {"imageTag": "nope"}, "failureCode": "ImageNotFound",
                                "failureReason": "Requested image not found"}]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.describe_images(repositoryName="c18", imageIds=[{"imageDigest": d1}])
    assert error_code(e) == "ImageNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert e.value.response["Error"]["Message"] == (
        f"The image with imageId {{imageDigest:'{d1}', imageTag:'null'}} does not exist within "
        f"the repository with name 'c18' in the registry with id '{ACCOUNT}'")
    rest = ecr.describe_images(repositoryName="c18")["imageDetails"]
    assert [(d["imageDigest"], d["imageTags"]) for d in rest] == [(d2, ["z"])]


def test_c20_digest_verification(ecr, reg):
    ecr.create_repository(repositoryName="c20")
    loc = reg.req("POST", "/v2/c20/blobs/uploads/").headers["Location"]
    other, payload = sha256_digest(b"other"), sha256_digest(b"payload")
    r = reg.req("PUT", f"{loc}?digest={other}", data=b"payload",
                headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400
    assert r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert reg.head(f"/v2/c20/blobs/{other}").status_code == 404
    assert reg.head(f"/v2/c20/blobs/{payload}").status_code == 404
    mono = reg.req("POST", f"/v2/c20/blobs/uploads/?digest={other}", data=b"payload")
    assert mono.status_code == 400 and mono.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert reg.head(f"/v2/c20/blobs/{other}").status_code == 404

    m, _, _ = make_manifest(reg, "c20", "c20")
    wrong = "sha256:" + hashlib.sha256(b"not the manifest").hexdigest()
    r = reg.put_manifest("c20", wrong, m)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert reg.head(f"/v2/c20/manifests/{wrong}").status_code == 404
    assert reg.head(f"/v2/c20/manifests/{sha256_digest(m)}").status_code == 404
    assert reg.put_manifest("c20", "sha256:xyz", m).status_code == 400
    ok = reg.put_manifest("c20", sha256_digest(m), m)
    assert ok.status_code == 201
    assert ok.headers["Docker-Content-Digest"] == sha256_digest(m)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.put_image(repositoryName="c20", imageManifest=m.decode(), imageTag="t",
                      imageDigest=wrong)
    assert error_code(e) == "ImageDigestDoesNotMatchException"


def test_c21_manifest_referencing_an_unpushed_blob(ecr, reg):
    ecr.create_repository(repositoryName="c21")
    m, config, layer = make_manifest(reg, "c21", "c21", push_config=False)
    r = reg.put_manifest("c21", "v1", m)
    assert r.status_code == 400
    errors = r.json()["errors"]
    assert errors == [{"code": "MANIFEST_BLOB_UNKNOWN", "message": "blob unknown to registry",
                       "detail": sha256_digest(config)}]
    g = reg.get("/v2/c21/manifests/v1")
    assert g.status_code == 404 and g.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.put_image(repositoryName="c21", imageManifest=m.decode(), imageTag="v1")
    assert error_code(e) == "LayersNotFoundException"
    assert sha256_digest(config) in e.value.response["Error"]["Message"]
    assert ecr.list_images(repositoryName="c21")["imageIds"] == []
    # Both blobs missing: one error entry each.
    m2, c2, l2 = make_manifest(reg, "c21", "none", push_config=False, push_layer=False)
    r2 = reg.put_manifest("c21", "v2", m2).json()["errors"]
    assert sorted(e["detail"] for e in r2) == sorted([sha256_digest(c2), sha256_digest(l2)])

    reg.push_blob("c21", config)
    ok = reg.put_manifest("c21", "v1", m)
    assert ok.status_code == 201
    assert reg.get("/v2/c21/manifests/v1").content == m


# --- the ECR API -----------------------------------------------------------

def test_repositories(berthd, ecr):
    out = ecr.create_repository(repositoryName="api/one", imageTagMutability="IMMUTABLE",
                                tags=[{"Key": "team", "Value": "a"}])["repository"]
    assert out["repositoryArn"] == f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/api/one"
    assert out["registryId"] == ACCOUNT
    assert out["repositoryUri"] == f"localhost:{berthd.port}/api/one"
    assert out["imageTagMutability"] == "IMMUTABLE"
    assert out["imageScanningConfiguration"] == {"scanOnPush": False}
    assert out["encryptionConfiguration"] == {"encryptionType": "AES256"}
    assert abs(out["createdAt"].timestamp() - time.time()) < 60

    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.create_repository(repositoryName="api/one")
    assert error_code(e) == "RepositoryAlreadyExistsException"
    assert e.value.response["Error"]["Message"] == (
        f"The repository with name 'api/one' already exists in the registry with id '{ACCOUNT}'")
    for bad in ("Upper", "a--b", "trailing/", "-lead", "a//b"):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            ecr.create_repository(repositoryName=bad)
        assert error_code(e) == "InvalidParameterException", bad
        assert "failed to satisfy constraint" in e.value.response["Error"]["Message"]

    got = ecr.describe_repositories(repositoryNames=["api/one"])["repositories"]
    assert got == [out]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.describe_repositories(repositoryNames=["api/missing"])
    assert error_code(e) == "RepositoryNotFoundException"
    assert e.value.response["Error"]["Message"] == (
        f"The repository with name 'api/missing' does not exist in the registry with id "
        f"'{ACCOUNT}'")

    for i in range(3):
        ecr.create_repository(repositoryName=f"api/page-{i}")
    seen, token = [], None
    while True:
        kw = {"maxResults": 2}
        if token:
            kw["nextToken"] = token
        page = ecr.describe_repositories(**kw)
        assert len(page["repositories"]) <= 2
        seen += [r["repositoryName"] for r in page["repositories"]]
        token = page.get("nextToken")
        if not token:
            break
    assert {"api/page-0", "api/page-1", "api/page-2", "api/one"} <= set(seen)
    assert len(seen) == len(set(seen))

    arn = out["repositoryArn"]
    assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "team", "Value": "a"}]
    ecr.tag_resource(resourceArn=arn, tags=[{"Key": "env", "Value": "dev"},
                                            {"Key": "team", "Value": "b"}])
    assert sorted((t["Key"], t["Value"]) for t in
                  ecr.list_tags_for_resource(resourceArn=arn)["tags"]) == [("env", "dev"),
                                                                           ("team", "b")]
    ecr.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "env", "Value": "dev"}]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.tag_resource(resourceArn=arn, tags=[{"Key": "aws:x", "Value": "y"}])
    assert error_code(e) == "InvalidTagParameterException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.list_tags_for_resource(resourceArn="arn:aws:ecr:us-east-1:000000000000:nope")
    assert error_code(e) == "InvalidParameterException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.list_tags_for_resource(resourceArn=arn.replace("api/one", "api/gone"))
    assert error_code(e) == "RepositoryNotFoundException"

    mut = ecr.put_image_tag_mutability(repositoryName="api/one", imageTagMutability="MUTABLE")
    assert mut["imageTagMutability"] == "MUTABLE"
    assert ecr.describe_repositories(repositoryNames=["api/one"])["repositories"][0][
        "imageTagMutability"] == "MUTABLE"


def test_delete_repository_needs_force_when_not_empty(ecr, reg):
    ecr.create_repository(repositoryName="api/del")
    m, _, _ = make_manifest(reg, "api/del", "del")
    assert reg.put_manifest("api/del", "v1", m).status_code == 201
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.delete_repository(repositoryName="api/del")
    assert error_code(e) == "RepositoryNotEmptyException"
    assert e.value.response["Error"]["Message"] == (
        f"The repository with name 'api/del' in registry with id '{ACCOUNT}' cannot be deleted "
        "because it still contains images")
    out = ecr.delete_repository(repositoryName="api/del", force=True)["repository"]
    assert out["repositoryName"] == "api/del"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.delete_repository(repositoryName="api/del")
    assert error_code(e) == "RepositoryNotFoundException"
    assert reg.get("/v2/api/del/tags/list").status_code == 404
    # A new repository of the same name starts empty.
    ecr.create_repository(repositoryName="api/del")
    assert ecr.list_images(repositoryName="api/del")["imageIds"] == []
    assert reg.head(f"/v2/api/del/manifests/{sha256_digest(m)}").status_code == 404


def test_list_and_batch_get_images(ecr, reg):
    repo = "api/images"
    ecr.create_repository(repositoryName=repo)
    m1, _, _ = make_manifest(reg, repo, "one")
    m2, _, _ = make_manifest(reg, repo, "two")
    d1, d2 = sha256_digest(m1), sha256_digest(m2)
    ecr.put_image(repositoryName=repo, imageManifest=m1.decode(), imageTag="one")
    ecr.put_image(repositoryName=repo, imageManifest=m1.decode(), imageTag="uno")
    ecr.put_image(repositoryName=repo, imageManifest=m2.decode())

    ids = ecr.list_images(repositoryName=repo)["imageIds"]
    assert sorted(ids, key=lambda i: (i["imageDigest"], i.get("imageTag", ""))) == sorted(
        [{"imageDigest": d1, "imageTag": "one"}, {"imageDigest": d1, "imageTag": "uno"},
         {"imageDigest": d2}], key=lambda i: (i["imageDigest"], i.get("imageTag", "")))
    assert ecr.list_images(repositoryName=repo, filter={"tagStatus": "UNTAGGED"})[
        "imageIds"] == [{"imageDigest": d2}]
    assert len(ecr.list_images(repositoryName=repo, filter={"tagStatus": "TAGGED"})[
        "imageIds"]) == 2
    paged, token = [], None
    while True:
        kw = {"repositoryName": repo, "maxResults": 1}
        if token:
            kw["nextToken"] = token
        page = ecr.list_images(**kw)
        paged += page["imageIds"]
        token = page.get("nextToken")
        if not token:
            break
    assert len(paged) == 3

    got = ecr.batch_get_image(repositoryName=repo, imageIds=[
        {"imageTag": "uno"}, {"imageDigest": d2}, {"imageTag": "missing"}, {}])
    assert [(i["imageId"], i["imageManifest"], i["imageManifestMediaType"])
            for i in got["images"]] == [({"imageDigest": d1, "imageTag": "uno"}, m1.decode(),
                                         OCI_MANIFEST), ({"imageDigest": d2}, m2.decode(),
                                                         OCI_MANIFEST)]
    assert [f["failureCode"] for f in got["failures"]] == ["ImageNotFound", "MissingDigestAndTag"]
    docker_only = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "one"}],
                                      acceptedMediaTypes=[DOCKER_MANIFEST])
    assert docker_only["images"] == []
    assert docker_only["failures"][0]["imageId"] == {"imageTag": "one"}
    oci_ok = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "one"}],
                                 acceptedMediaTypes=[DOCKER_MANIFEST, OCI_MANIFEST])
    assert len(oci_ok["images"]) == 1
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.list_images(repositoryName="api/none")
    assert error_code(e) == "RepositoryNotFoundException"


def test_layer_upload_operations(ecr):
    repo = "api/layers"
    ecr.create_repository(repositoryName=repo)
    data = os.urandom(300000)
    digest = sha256_digest(data)

    up = ecr.initiate_layer_upload(repositoryName=repo)
    assert len(up["uploadId"]) == 36 and up["partSize"] > 0
    uid = up["uploadId"]
    r = ecr.upload_layer_part(repositoryName=repo, uploadId=uid, partFirstByte=0,
                              partLastByte=99999, layerPartBlob=data[:100000])
    assert r["lastByteReceived"] == 99999
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.upload_layer_part(repositoryName=repo, uploadId=uid, partFirstByte=200000,
                              partLastByte=299999, layerPartBlob=data[200000:])
    assert error_code(e) == "InvalidLayerPartException"
    ecr.upload_layer_part(repositoryName=repo, uploadId=uid, partFirstByte=100000,
                          partLastByte=299999, layerPartBlob=data[100000:])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.complete_layer_upload(repositoryName=repo, uploadId=uid,
                                  layerDigests=[sha256_digest(b"something else")])
    assert error_code(e) == "InvalidLayerException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.complete_layer_upload(repositoryName=repo, uploadId=uid, layerDigests=[digest])
    assert error_code(e) == "UploadNotFoundException"

    uid = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    ecr.upload_layer_part(repositoryName=repo, uploadId=uid, partFirstByte=0,
                          partLastByte=len(data) - 1, layerPartBlob=data)
    done = ecr.complete_layer_upload(repositoryName=repo, uploadId=uid, layerDigests=[digest])
    assert done["layerDigest"] == digest and done["uploadId"] == uid

    check = ecr.batch_check_layer_availability(
        repositoryName=repo, layerDigests=[digest, sha256_digest(b"never"), "md5:zz"])
    assert check["layers"] == [{"layerDigest": digest, "layerAvailability": "AVAILABLE",
                                "layerSize": len(data)}]
    assert [(f["layerDigest"], f["failureCode"]) for f in check["failures"]] == [
        (sha256_digest(b"never"), "MissingLayerDigest"), ("md5:zz", "InvalidLayerDigest")]

    uid = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    ecr.upload_layer_part(repositoryName=repo, uploadId=uid, partFirstByte=0,
                          partLastByte=len(data) - 1, layerPartBlob=data)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.complete_layer_upload(repositoryName=repo, uploadId=uid, layerDigests=[digest])
    assert error_code(e) == "LayerAlreadyExistsException"
    empty = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.complete_layer_upload(repositoryName=repo, uploadId=empty, layerDigests=[digest])
    assert error_code(e) == "EmptyUploadException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.upload_layer_part(repositoryName=repo, uploadId="00000000-0000-4000-8000-000000000000",
                              partFirstByte=0, partLastByte=0, layerPartBlob=b"x")
    assert error_code(e) == "UploadNotFoundException"

    url = ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=digest)["downloadUrl"]
    with urllib.request.urlopen(url.replace("localhost", "127.0.0.1"), timeout=30) as f:
        assert f.read() == data
    tampered = url.replace("X-Berth-Signature=", "X-Berth-Signature=x")
    with pytest.raises(urllib.error.HTTPError) as h:
        urllib.request.urlopen(tampered.replace("localhost", "127.0.0.1"), timeout=30)
    assert h.value.code == 403
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=sha256_digest(b"nope"))
    assert error_code(e) == "LayersNotFoundException"


POLICY_ANY_KEEP_1 = json.dumps({"rules": [{
    "rulePriority": 1, "description": "keep only the newest image",
    "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
    "action": {"type": "expire"}}]})


def test_lifecycle_policy_operations(ecr):
    repo = "api/lifecycle"
    ecr.create_repository(repositoryName=repo)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.get_lifecycle_policy(repositoryName=repo)
    assert error_code(e) == "LifecyclePolicyNotFoundException"
    invalid = json.dumps({"rules": [{
        "rulePriority": 1, "description": "tagged without a tag filter is not allowed",
        "selection": {"tagStatus": "tagged", "countType": "imageCountMoreThan",
                      "countNumber": 1}, "action": {"type": "expire"}}]})
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=invalid)
    assert error_code(e) == "InvalidParameterException"
    assert "Lifecycle policy validation failure" in e.value.response["Error"]["Message"]
    out = ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=POLICY_ANY_KEEP_1)
    assert out["lifecyclePolicyText"] == POLICY_ANY_KEEP_1 and out["registryId"] == ACCOUNT
    assert ecr.get_lifecycle_policy(repositoryName=repo)["lifecyclePolicyText"] == \
        POLICY_ANY_KEEP_1
    assert ecr.delete_lifecycle_policy(repositoryName=repo)["lifecyclePolicyText"] == \
        POLICY_ANY_KEEP_1
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ecr.delete_lifecycle_policy(repositoryName=repo)
    assert error_code(e) == "LifecyclePolicyNotFoundException"


# --- garbage collection and crash safety ----------------------------------

def test_lifecycle_policy_expires_images(gc_berthd):
    ecr = gc_berthd.client("ecr")
    reg = Reg(gc_berthd, password_of(ecr))
    repo = "gc/lifecycle"
    ecr.create_repository(repositoryName=repo)
    digests = []
    for name in ("first", "second", "third"):
        m, _, _ = make_manifest(reg, repo, name)
        assert reg.put_manifest(repo, name, m).status_code == 201
        digests.append(sha256_digest(m))
        time.sleep(0.01)
    ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=POLICY_ANY_KEEP_1)

    def left():
        return [d["imageDigest"] for d in ecr.describe_images(repositoryName=repo)["imageDetails"]]
    assert wait_for(lambda: len(left()) == 1)
    assert left() == [digests[2]]
    assert ecr.get_lifecycle_policy(repositoryName=repo)["lastEvaluatedAt"].year >= 2024


def test_collector_removes_unreferenced_blobs_only(gc_berthd):
    ecr = gc_berthd.client("ecr")
    reg = Reg(gc_berthd, password_of(ecr))
    for name in ("gc/a", "gc/b"):
        ecr.create_repository(repositoryName=name)
    shared, shared_config, shared_layer = make_manifest(reg, "gc/a", "shared")
    make_manifest(reg, "gc/b", "shared")
    assert reg.put_manifest("gc/a", "s", shared).status_code == 201
    assert reg.put_manifest("gc/b", "s", shared).status_code == 201
    own, own_config, own_layer = make_manifest(reg, "gc/a", "own")
    assert reg.put_manifest("gc/a", "o", own).status_code == 201
    own_hex = sha256_digest(own_layer).split(":")[1]
    shared_hex = sha256_digest(shared_layer).split(":")[1]
    assert own_hex in blob_files(gc_berthd)

    assert reg.req("DELETE", f"/v2/gc/a/manifests/{sha256_digest(own)}").status_code == 202
    assert reg.req("DELETE", f"/v2/gc/a/manifests/{sha256_digest(shared)}").status_code == 202
    assert wait_for(lambda: own_hex not in blob_files(gc_berthd))
    files = blob_files(gc_berthd)
    assert sha256_digest(own_config).split(":")[1] not in files
    assert sha256_digest(own).split(":")[1] not in files
    # gc/b's manifest still needs the shared blobs.
    assert shared_hex in files
    assert reg.get(f"/v2/gc/b/blobs/{sha256_digest(shared_layer)}").content == shared_layer
    assert reg.get("/v2/gc/b/manifests/s").content == shared
    assert reg.head(f"/v2/gc/a/blobs/{sha256_digest(own_layer)}").status_code == 404


def test_abandoned_upload_is_collected(gc_berthd):
    ecr = gc_berthd.client("ecr")
    reg = Reg(gc_berthd, password_of(ecr))
    ecr.create_repository(repositoryName="gc/abandoned")
    loc = reg.req("POST", "/v2/gc/abandoned/blobs/uploads/").headers["Location"]
    r = reg.req("PATCH", loc, data=b"x" * 1000, headers={"Content-Range": "0-999"})
    assert r.status_code == 202
    upload_file = os.path.join(gc_berthd.data_dir, "registry", "uploads", loc.rsplit("/", 1)[1])
    assert os.path.getsize(upload_file) == 1000
    assert wait_for(lambda: reg.get(loc).status_code == 404)
    assert reg.get(loc).json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    assert not os.path.exists(upload_file)


def test_kill9_during_large_upload_leaves_no_partial_blob(berthd_factory):
    b = berthd_factory("registry-crash")
    ecr = b.client("ecr")
    password = password_of(ecr)
    reg = Reg(b, password)
    ecr.create_repository(repositoryName="crash/big")
    size = 256 << 20
    data = hashlib.shake_256(b"berth crash test").digest(size)
    digest = sha256_digest(data)
    loc = reg.req("POST", "/v2/crash/big/blobs/uploads/").headers["Location"]

    auth = base64.b64encode(f"AWS:{password}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", b.port, timeout=60)
    conn.putrequest("PATCH", loc)
    conn.putheader("Authorization", "Basic " + auth)
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    sent = 0
    chunk = 1 << 20
    killed = False
    try:
        while sent < size:
            conn.send(data[sent:sent + chunk])
            sent += chunk
            if sent >= size // 2 and not killed:
                b.kill9()
                killed = True
    except OSError:
        pass
    conn.close()
    assert killed

    b.start()
    # The token issued before the crash is still good.
    assert reg.get("/v2/").status_code == 200
    assert reg.head(f"/v2/crash/big/blobs/{digest}").status_code == 404
    files = blob_files(b)
    assert digest.split(":")[1] not in files
    for name, path in files.items():
        with open(path, "rb") as f:
            assert sha256_digest(f.read()) == "sha256:" + name

    status = reg.get(loc)
    assert status.status_code == 204
    have = int(status.headers["Range"].split("-")[1]) + 1
    assert 0 < have <= sent
    resumed = reg.req("PATCH", loc, data=data[have:],
                      headers={"Content-Range": f"{have}-{size - 1}",
                               "Content-Type": "application/octet-stream"})
    assert resumed.status_code == 202
    assert resumed.headers["Range"] == f"0-{size - 1}"
    done = reg.req("PUT", f"{loc}?digest={digest}")
    assert done.status_code == 201
    head = reg.head(f"/v2/crash/big/blobs/{digest}")
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == size
    # A fresh upload of the same blob also works and stores nothing twice.
    again = reg.req("POST", f"/v2/crash/big/blobs/uploads/?digest={digest}", data=data)
    assert again.status_code == 201
    assert os.path.getsize(blob_files(b)[digest.split(":")[1]]) == size
    assert os.listdir(os.path.join(b.data_dir, "registry", "uploads")) == []
