#!/usr/bin/env python3
"""Builds berth's sample application image from Debian's busybox-static.

The image needs no network: one layer holding /bin/busybox, its applet links
and a start script that serves, with busybox httpd, a page naming the task
(read from the ECS task metadata endpoint) and its environment.

Writes an OCI image layout directory and a docker-archive tarball:

    build.py --oci out/sample-oci --docker-archive out/sample.tar [--tag latest]
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import time

BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "httpd", "wget", "echo", "cat", "env", "sleep", "hostname", "ls", "mkdir",
           "true", "false", "grep", "sed", "nc", "ps", "kill", "head", "tail", "date", "id",
           "printf", "test", "[", "rm", "cp", "mv", "touch", "dd", "yes", "seq", "awk", "tr",
           "cut", "wc", "sort", "uname", "ip", "ifconfig", "ping", "timeout"]

START_SCRIPT = r"""#!/bin/sh
# berth sample app: serves a page naming the task it runs in.
PORT="${PORT:-80}"
mkdir -p /tmp/www
TASK_ARN=""
if [ -n "$ECS_CONTAINER_METADATA_URI_V4" ]; then
  TASK_ARN=$(wget -q -O - "$ECS_CONTAINER_METADATA_URI_V4/task" 2>/dev/null |
             sed -n 's/.*"TaskARN":"\([^"]*\)".*/\1/p')
fi
TASK_ID="${TASK_ARN##*/}"
{
  echo "hello from berth task ${TASK_ID:-unknown}"
  echo "host $(hostname)"
  echo "message ${MESSAGE:-none}"
} > /tmp/www/index.html
echo "sample-app: serving task ${TASK_ID:-unknown} on port $PORT"
httpd -f -v -p "$PORT" -h /tmp/www &
HTTPD=$!
# As PID 1 the shell must end the server itself when the task is stopped.
trap 'echo "sample-app: stopping"; kill $HTTPD; wait $HTTPD; exit 0' TERM INT
wait $HTTPD
"""

EPOCH = 1700000000  # fixed mtimes make the build reproducible


def _layer_tar():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add_dir(path, mode=0o755):
            ti = tarfile.TarInfo(path)
            ti.type = tarfile.DIRTYPE
            ti.mode = mode
            ti.mtime = EPOCH
            tar.addfile(ti)

        for d in ["bin", "app", "tmp", "etc", "www"]:
            add_dir(d, 0o1777 if d == "tmp" else 0o755)
        with open(BUSYBOX, "rb") as f:
            data = f.read()
        ti = tarfile.TarInfo("bin/busybox")
        ti.size = len(data)
        ti.mode = 0o755
        ti.mtime = EPOCH
        tar.addfile(ti, io.BytesIO(data))
        for applet in APPLETS:
            ti = tarfile.TarInfo("bin/" + applet)
            ti.type = tarfile.SYMTYPE
            ti.linkname = "busybox"
            ti.mtime = EPOCH
            tar.addfile(ti)
        for name, content, mode in [
            ("app/start.sh", START_SCRIPT, 0o755),
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n", 0o644),
            ("etc/group", "root:x:0:\nnogroup:x:65534:\n", 0o644),
        ]:
            raw = content.encode()
            ti = tarfile.TarInfo(name)
            ti.size = len(raw)
            ti.mode = mode
            ti.mtime = EPOCH
            tar.addfile(ti, io.BytesIO(raw))
    return buf.getvalue()


def _digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build(oci_dir=None, docker_archive=None, tag="latest", repo_tag="berth-sample:latest"):
    layer = _layer_tar()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=EPOCH) as g:
        g.write(layer)
    layer_gz = gz.getvalue()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(EPOCH)),
        "config": {
            "Entrypoint": ["/app/start.sh"],
            "Env": ["PATH=/bin", "PORT=80"],
            "WorkingDir": "/",
            "ExposedPorts": {"80/tcp": {}},
        },
        "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
        "history": [{"created_by": "berth sample app build", "created": "2023-11-14T22:13:20Z"}],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _digest(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _digest(layer_gz), "size": len(layer_gz)}],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    if oci_dir:
        if os.path.exists(oci_dir):
            shutil.rmtree(oci_dir)
        blobs = os.path.join(oci_dir, "blobs", "sha256")
        os.makedirs(blobs)
        for data in (layer_gz, config_bytes, manifest_bytes):
            with open(os.path.join(blobs, hashlib.sha256(data).hexdigest()), "wb") as f:
                f.write(data)
        with open(os.path.join(oci_dir, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        index = {"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": _digest(manifest_bytes), "size": len(manifest_bytes),
            "annotations": {"org.opencontainers.image.ref.name": tag}}]}
        with open(os.path.join(oci_dir, "index.json"), "w") as f:
            json.dump(index, f)
    if docker_archive:
        os.makedirs(os.path.dirname(os.path.abspath(docker_archive)), exist_ok=True)
        layer_hex = hashlib.sha256(layer).hexdigest()
        config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
        entries = [
            (config_name, config_bytes),
            (f"{layer_hex}/layer.tar", layer),
            ("manifest.json", json.dumps([{"Config": config_name, "RepoTags": [repo_tag],
                                           "Layers": [f"{layer_hex}/layer.tar"]}]).encode()),
        ]
        with tarfile.open(docker_archive, "w") as tar:
            for name, data in entries:
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                ti.mtime = EPOCH
                tar.addfile(ti, io.BytesIO(data))
    return {"manifest_digest": _digest(manifest_bytes), "config_digest": _digest(config_bytes),
            "layer_digest": _digest(layer_gz)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--oci", help="write an OCI image layout here")
    p.add_argument("--docker-archive", help="write a docker-archive tarball here")
    p.add_argument("--tag", default="latest")
    args = p.parse_args()
    if not args.oci and not args.docker_archive:
        p.error("give --oci and/or --docker-archive")
    out = build(args.oci, args.docker_archive, args.tag)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
