"""Writes small OCI image layouts from Debian's busybox-static, with no network.

The images are made from Debian's busybox-static: one gzip layer holding
bin/busybox plus applet symlinks (and any extra files), an image config with
the given entrypoint, cmd, env and working dir, a manifest, and index.json.
Everything is deterministic (fixed mtimes, owners and gzip headers), so the
same arguments always give the same digests.

    from ociimage import build_image
    img = build_image("/tmp/layout", tag="v1", cmd=["sh", "-c", "echo hi"])
    # skopeo copy oci:/tmp/layout:v1 docker://localhost:4566/app:v1 ...
    img.manifest_digest, img.config_digest, img.layer_digests
"""
import dataclasses
import gzip
import hashlib
import io
import json
import os
import tarfile

BUSYBOX = "/bin/busybox"
DEFAULT_APPLETS = ("sh", "echo", "cat", "ls", "sleep", "env", "wget", "httpd", "nc", "true",
                   "false", "id", "hostname", "ps", "kill", "mkdir", "rm", "touch", "date")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclasses.dataclass
class Image:
    """What build_image wrote: digests and the raw documents."""
    layout: str
    tag: str
    manifest_digest: str
    manifest: bytes
    config_digest: str
    config: bytes
    layer_digests: list
    media_type: str = OCI_MANIFEST

    @property
    def reference(self):
        """The skopeo/podman source reference of this image."""
        return f"oci:{self.layout}:{self.tag}"


class Layout:
    """An OCI image layout directory being written."""

    def __init__(self, path):
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        index_path = os.path.join(path, "index.json")
        if os.path.exists(index_path):
            with open(index_path) as f:
                self.index = json.load(f)
        else:
            self.index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}

    def add_blob(self, data):
        digest = sha256_digest(data)
        path = os.path.join(self.path, "blobs", "sha256", digest.split(":", 1)[1])
        if not os.path.exists(path):
            with open(path + ".tmp", "wb") as f:
                f.write(data)
            os.rename(path + ".tmp", path)
        return digest

    def add_blob_file(self, src_path, digest):
        """Moves an already written file into the layout under its digest."""
        dst = os.path.join(self.path, "blobs", "sha256", digest.split(":", 1)[1])
        os.replace(src_path, dst)
        return digest

    def tag(self, tag, media_type, digest, size):
        self.index["manifests"] = [m for m in self.index["manifests"]
                                   if m.get("annotations", {}).get(REF_NAME) != tag]
        self.index["manifests"].append({
            "mediaType": media_type, "digest": digest, "size": size,
            "annotations": {REF_NAME: tag}})
        self.save()

    def save(self):
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump(self.index, f, indent=2)


def _tar_entry(tar, name, data=None, mode=0o644, link=None, kind=tarfile.REGTYPE):
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = mode
    if kind == tarfile.DIRTYPE:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif link is not None:
        info.type = tarfile.SYMTYPE
        info.linkname = link
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def busybox_layer(applets=DEFAULT_APPLETS, files=None):
    """Returns (gzip bytes, uncompressed tar digest) of the busybox layer.

    `files` maps paths inside the image to bytes (or (bytes, mode))."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        with open(BUSYBOX, "rb") as f:
            busybox = f.read()
        dirs = {"bin", "tmp", "etc", "root"}
        for path in (files or {}):
            parts = path.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        for d in sorted(dirs):
            _tar_entry(tar, d, mode=0o1777 if d == "tmp" else 0o755, kind=tarfile.DIRTYPE)
        _tar_entry(tar, "bin/busybox", busybox, mode=0o755)
        for applet in applets:
            _tar_entry(tar, f"bin/{applet}", link="busybox")
        for path, content in sorted((files or {}).items()):
            mode = 0o644
            if isinstance(content, tuple):
                content, mode = content
            if isinstance(content, str):
                content = content.encode()
            _tar_entry(tar, path.strip("/"), content, mode=mode)
    tar_bytes = raw.getvalue()
    compressed = gzip.compress(tar_bytes, compresslevel=6, mtime=0)
    return compressed, sha256_digest(tar_bytes)


def build_image(layout_path, tag="latest", entrypoint=None, cmd=None, env=None, workdir=None,
                user=None, exposed_ports=None, labels=None, arch="amd64", os_name="linux",
                applets=DEFAULT_APPLETS, files=None, extra_layers=()):
    """Writes one image into the layout at `layout_path` under `tag`.

    `extra_layers` are (gzip bytes, diff id) pairs stacked on the busybox layer."""
    layout = Layout(layout_path)
    layer, diff_id = busybox_layer(applets, files)
    layers = [(layer, diff_id)] + list(extra_layers)
    layer_descs = []
    for data, _ in layers:
        layer_descs.append({"mediaType": OCI_LAYER_GZIP, "digest": layout.add_blob(data),
                            "size": len(data)})
    config_body = {"Env": env if env is not None else
                   ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
    if entrypoint is not None:
        config_body["Entrypoint"] = entrypoint
    if cmd is not None:
        config_body["Cmd"] = cmd
    if workdir:
        config_body["WorkingDir"] = workdir
    if user:
        config_body["User"] = user
    if exposed_ports:
        config_body["ExposedPorts"] = {p: {} for p in exposed_ports}
    if labels:
        config_body["Labels"] = labels
    config = json.dumps({
        "created": "1970-01-01T00:00:00Z",
        "architecture": arch,
        "os": os_name,
        "config": config_body,
        "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "berth test image"}],
    }, sort_keys=True).encode()
    config_digest = layout.add_blob(config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": layer_descs,
    }, sort_keys=True).encode()
    manifest_digest = layout.add_blob(manifest)
    layout.tag(tag, OCI_MANIFEST, manifest_digest, len(manifest))
    return Image(layout_path, tag, manifest_digest, manifest, config_digest, config,
                 [d["digest"] for d in layer_descs])


def write_docker_archive(path, image, repo_tag):
    """Writes `image` (an Image of a layout) as a docker-archive tarball, the format
    `docker load` and `podman load` read, tagged `repo_tag`."""
    def blob(digest):
        with open(os.path.join(image.layout, "blobs", "sha256", digest.split(":", 1)[1]),
                  "rb") as f:
            return f.read()

    config_name = image.config_digest.split(":", 1)[1] + ".json"
    entries = [(config_name, image.config)]
    layer_names = []
    for digest in image.layer_digests:
        layer = gzip.decompress(blob(digest))
        name = hashlib.sha256(layer).hexdigest() + "/layer.tar"
        layer_names.append(name)
        entries.append((name, layer))
    entries.append(("manifest.json", json.dumps([{
        "Config": config_name, "RepoTags": [repo_tag], "Layers": layer_names}]).encode()))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

