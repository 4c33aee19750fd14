"""OCI image layouts for tests and benchmarks: the sample app's image writer
(examples/sample_app/ociimage.py) plus multi-architecture indexes and large
incompressible images.

    from images import build_image
    img = build_image("/tmp/layout", tag="v1", cmd=["sh", "-c", "echo hi"])
"""
import hashlib
import json
import os
import sys
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "examples", "sample_app"))
from ociimage import (BUSYBOX, DEFAULT_APPLETS, OCI_CONFIG, OCI_INDEX,  # noqa: E402,F401
                      OCI_LAYER_GZIP, OCI_MANIFEST, REF_NAME, Image, Layout, build_image,
                      busybox_layer, sha256_digest)


def build_index(layout_path, tag="latest", arches=("amd64", "arm64"), **kwargs):
    """Writes a multi-architecture index under `tag`: one image per arch (each
    with an /etc/arch file naming it, so their layers differ). Returns
    (index digest, index bytes, [Image per arch])."""
    images = []
    entries = []
    base_files = dict(kwargs.pop("files", None) or {})
    for arch in arches:
        files = dict(base_files)
        files["etc/arch"] = arch + "\n"
        img = build_image(layout_path, tag=f"{tag}-{arch}", arch=arch, files=files, **kwargs)
        images.append(img)
        entries.append({"mediaType": OCI_MANIFEST, "digest": img.manifest_digest,
                        "size": len(img.manifest),
                        "platform": {"architecture": arch, "os": "linux"}})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries},
                       sort_keys=True).encode()
    layout = Layout(layout_path)
    digest = layout.add_blob(index)
    for arch in arches:
        layout.index["manifests"] = [m for m in layout.index["manifests"]
                                     if m.get("annotations", {}).get(REF_NAME) != f"{tag}-{arch}"]
    layout.tag(tag, OCI_INDEX, digest, len(index))
    return digest, index, images


def random_gzip_layer(path, size, seed=0):
    """Writes a gzip stream of about `size` incompressible bytes to `path`
    (stored deflate blocks, so it is fast to make). Returns (digest, diff id,
    bytes written)."""
    comp = zlib.compressobj(level=0, wbits=31)
    outer = hashlib.sha256()
    inner = hashlib.sha256()
    written = 0
    chunk = 4 << 20
    rng = hashlib.sha256(str(seed).encode()).digest()
    with open(path, "wb") as f:
        remaining = size
        while remaining > 0:
            n = min(chunk, remaining)
            data = os.urandom(n) if seed is None else _pseudo_random(rng, written, n)
            inner.update(data)
            out = comp.compress(data)
            outer.update(out)
            f.write(out)
            written += len(out)
            remaining -= n
        out = comp.flush()
        outer.update(out)
        f.write(out)
        written += len(out)
    return "sha256:" + outer.hexdigest(), "sha256:" + inner.hexdigest(), written


def _pseudo_random(seed, offset, n):
    # Fast deterministic bytes: SHAKE-256 of the seed and offset.
    return hashlib.shake_256(seed + offset.to_bytes(8, "big")).digest(n)


def build_blob_image(layout_path, tag, layer_sizes, seed=0):
    """An image whose layers are incompressible gzip streams of the given sizes
    (for benchmarks). Returns an Image."""
    layout = Layout(layout_path)
    descs = []
    diff_ids = []
    for i, size in enumerate(layer_sizes):
        tmp = os.path.join(layout_path, f"layer-{i}.tmp")
        digest, diff_id, written = random_gzip_layer(tmp, size, seed=None if seed is None
                                                     else seed * 100003 + i)
        layout.add_blob_file(tmp, digest)
        descs.append({"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": written})
        diff_ids.append(diff_id)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}},
                        sort_keys=True).encode()
    config_digest = layout.add_blob(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": OCI_CONFIG, "digest": config_digest,
                                      "size": len(config)},
                           "layers": descs}, sort_keys=True).encode()
    manifest_digest = layout.add_blob(manifest)
    layout.tag(tag, OCI_MANIFEST, manifest_digest, len(manifest))
    return Image(layout_path, tag, manifest_digest, manifest, config_digest, config,
                 [d["digest"] for d in descs])
