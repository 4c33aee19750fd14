#!/usr/bin/env python3
"""Builds berth's sample application image from Debian's busybox-static.

The image needs no network: one layer holding /bin/busybox, its applet links
and a start script that serves, with busybox httpd, a page naming the task
(read from the ECS task metadata endpoint) and its environment.

Writes an OCI image layout directory and a docker-archive tarball:

    build.py --oci out/sample-oci --docker-archive out/sample.tar [--tag latest]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ociimage import build_image, write_docker_archive  # noqa: E402

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

def build(oci_dir=None, docker_archive=None, tag="latest", repo_tag="berth-sample:latest"):
    """Writes the sample image as an OCI layout and/or a docker-archive; returns its digests."""
    with tempfile.TemporaryDirectory(prefix="berth-sample-") as scratch:
        layout = oci_dir or os.path.join(scratch, "oci")
        if oci_dir and os.path.exists(oci_dir):
            shutil.rmtree(oci_dir)
        image = build_image(
            layout, tag=tag, entrypoint=["/app/start.sh"], env=["PATH=/bin", "PORT=80"],
            workdir="/", exposed_ports=["80/tcp"], applets=APPLETS,
            files={"app/start.sh": (START_SCRIPT, 0o755),
                   "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"
                                 "nobody:x:65534:65534:nobody:/:/bin/false\n",
                   "etc/group": "root:x:0:\nnogroup:x:65534:\n"})
        if docker_archive:
            write_docker_archive(docker_archive, image, repo_tag)
    return {"manifest_digest": image.manifest_digest, "config_digest": image.config_digest,
            "layer_digest": image.layer_digests[0]}


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
