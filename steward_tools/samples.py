"""Small, valid container images built on the fly: `steward sample-image` and the tests.

    base = build_image(layer_sizes=[1024, 2048], seed=1)
    app = build_image(layer_sizes=[512], seed=2, base=base, revision="abc123")
    index = build_index([build_image(seed=3), build_image(seed=4, architecture="arm64")])
    write_oci_layout(tmp_path / "layout", index, ref_name="1.2.3")
    push_built(registry, app, "team/app", tag="1.0")

Layers are tar archives (gzipped or not) of one file of random bytes from a seeded
`random.Random`, so the same arguments always give the same digests, and runtimes and `umoci
unpack` can unpack them. Manifests are serialised once and kept as bytes; every digest is of
those bytes.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import random
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from chalicelib.oci.manifests import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST_V2,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    HasManifest,
    Manifest,
    digest_of,
)
from steward_tools.image_source.oci_layout import blob_path

COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_IMAGE_NAME = "io.containerd.image.name"
REVISION_LABEL = "org.opencontainers.image.revision"
CREATED = "2024-01-01T00:00:00Z"
EMPTY_JSON = b"{}"

Format = Literal["oci", "docker"]


def blob_file(layout: Path, digest: str) -> Path:
    """Where an OCI image layout keeps a blob."""
    return layout / blob_path(digest)


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


def _serialise(document: dict[str, Any]) -> str:
    # Indented on purpose: anything that re-serialised a manifest would change its digest.
    return json.dumps(document, indent=2)


def _manifest(document: dict[str, Any], media_type: str) -> Manifest:
    body = _serialise(document)
    return Manifest(digest=digest_of(body.encode()), media_type=media_type, body=body)


# --- what the builders return -------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One layer: `blob` is what the registry stores, `content` the uncompressed tar."""

    content: bytes
    gzipped: bool

    @property
    def blob(self) -> bytes:
        # mtime=0 keeps the gzip header, and so the digest, reproducible.
        return (
            gzip.compress(self.content, compresslevel=1, mtime=0) if self.gzipped else self.content
        )

    @property
    def digest(self) -> str:
        return digest_of(self.blob)

    @property
    def diff_id(self) -> str:
        return digest_of(self.content)


@dataclass(frozen=True)
class BuiltImage(HasManifest):
    """An image manifest with its config and layer bytes (also signatures and referrers)."""

    manifest: Manifest
    config: bytes
    layers: list[Layer]
    platform: dict[str, str] | None = None
    # blobs beyond config and layers: a referrer's payload.
    extra_blobs: dict[str, bytes] = field(default_factory=dict)

    @property
    def config_digest(self) -> str:
        return digest_of(self.config)

    @property
    def layer_digests(self) -> list[str]:
        return [layer.digest for layer in self.layers]

    @property
    def diff_ids(self) -> list[str]:
        return [layer.diff_id for layer in self.layers]

    @property
    def blobs(self) -> dict[str, bytes]:
        """Every blob the manifest needs in its repository, by digest (config included)."""
        found = {self.config_digest: self.config}
        found.update((layer.digest, layer.blob) for layer in self.layers)
        found.update(self.extra_blobs)
        return found

    @property
    def manifests(self) -> list[Manifest]:
        return [self.manifest]

    def descriptor(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.manifest.body.encode()),
        }
        if self.platform:
            described["platform"] = dict(self.platform)
        return described


@dataclass(frozen=True)
class BuiltIndex(HasManifest):
    """An index (manifest list) over images or other indexes."""

    manifest: Manifest
    children: list[BuiltImage | BuiltIndex]

    @property
    def blobs(self) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for child in self.children:
            found.update(child.blobs)
        return found

    @property
    def manifests(self) -> list[Manifest]:
        """Every manifest, children before the index that lists them (the order to put them)."""
        ordered: dict[str, Manifest] = {}
        for child in self.children:
            ordered.update((m.digest, m) for m in child.manifests)
        ordered[self.digest] = self.manifest
        return list(ordered.values())

    @property
    def images(self) -> list[BuiltImage]:
        """The image manifests below this index, nested indexes flattened."""
        found: list[BuiltImage] = []
        for child in self.children:
            found.extend(child.images if isinstance(child, BuiltIndex) else [child])
        return found

    def descriptor(self) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.manifest.body.encode()),
        }


Built = BuiltImage | BuiltIndex


# --- builders -----------------------------------------------------------------------------


def tar_layer(files: Mapping[str, bytes], *, gzipped: bool = True) -> Layer:
    """A layer holding these files (reproducible: fixed mtime, owner and modes)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        directories = sorted(
            {"/".join(n.split("/")[:i]) for n in files for i in range(1, n.count("/") + 1)}
        )
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return Layer(content=buffer.getvalue(), gzipped=gzipped)


def random_layer(rng: random.Random, size: int, *, gzipped: bool = True) -> Layer:
    """A tar layer with one file of `size` random bytes (its name random too, so layers of the
    same size from different seeds differ in more than content)."""
    name = f"steward/sample-{rng.getrandbits(64):016x}.bin"
    return tar_layer({name: rng.randbytes(size)}, gzipped=gzipped)


def image_config(
    layers: Sequence[Layer],
    *,
    architecture: str = "amd64",
    os: str = "linux",
    variant: str | None = None,
    labels: Mapping[str, str] | None = None,
    created: str = CREATED,
) -> bytes:
    """A valid OCI (and Docker) image config JSON for these layers."""
    document: dict[str, Any] = {"created": created, "architecture": architecture, "os": os}
    if variant:
        document["variant"] = variant
    document["config"] = {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["/bin/sh"],
        **({"Labels": dict(labels)} if labels else {}),
    }
    document["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}
    document["history"] = [
        {"created": created, "created_by": f"/bin/sh -c #(nop) layer {position}"}
        for position in range(len(layers))
    ]
    return json.dumps(document, separators=(",", ":")).encode()


def _layer_media_type(layer: Layer, media_format: Format) -> str:
    if media_format == "docker":
        return DOCKER_LAYER_GZIP if layer.gzipped else DOCKER_LAYER
    return OCI_LAYER_GZIP if layer.gzipped else OCI_LAYER


def build_image(
    layer_sizes: Sequence[int] = (1024,),
    *,
    seed: int = 0,
    gzip_layers: bool = True,
    media_format: Format = "oci",
    architecture: str = "amd64",
    os: str = "linux",
    variant: str | None = None,
    labels: Mapping[str, str] | None = None,
    revision: str | None = None,
    base: BuiltImage | None = None,
    layers: Sequence[Layer] = (),
    annotations: Mapping[str, str] | None = None,
    declare_media_type: bool = True,
) -> BuiltImage:
    """An image manifest over random layers of the given (uncompressed) sizes.

    `base` puts that image's layers first (the same blobs, as FROM would); `layers` adds
    ready-made layers before the random ones. `revision` sets the
    org.opencontainers.image.revision label. `declare_media_type=False` leaves `mediaType` out
    of the manifest, as OCI allows (the media type then comes from the descriptor).
    """
    rng = random.Random(seed)
    all_layers = [*(base.layers if base else []), *layers]
    all_layers += [random_layer(rng, size, gzipped=gzip_layers) for size in layer_sizes]
    all_labels = dict(labels or {})
    if revision:
        all_labels[REVISION_LABEL] = revision
    config = image_config(
        all_layers, architecture=architecture, os=os, variant=variant, labels=all_labels
    )
    media_type = DOCKER_MANIFEST_V2 if media_format == "docker" else OCI_MANIFEST
    document: dict[str, Any] = {"schemaVersion": 2}
    if declare_media_type or media_format == "docker":
        document["mediaType"] = media_type
    document["config"] = {
        "mediaType": DOCKER_CONFIG if media_format == "docker" else OCI_CONFIG,
        "digest": digest_of(config),
        "size": len(config),
    }
    document["layers"] = [
        {
            "mediaType": _layer_media_type(layer, media_format),
            "digest": layer.digest,
            "size": len(layer.blob),
        }
        for layer in all_layers
    ]
    if annotations:
        document["annotations"] = dict(annotations)
    platform = {"architecture": architecture, "os": os, **({"variant": variant} if variant else {})}
    return BuiltImage(
        manifest=_manifest(document, media_type),
        config=config,
        layers=all_layers,
        platform=platform,
    )


def build_index(
    children: Iterable[Built],
    *,
    media_format: Format = "oci",
    annotations: Mapping[str, str] | None = None,
) -> BuiltIndex:
    """An OCI index (or Docker manifest list) over images, each described with its platform."""
    members = list(children)
    media_type = DOCKER_MANIFEST_LIST if media_format == "docker" else OCI_INDEX
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [child.descriptor() for child in members],
    }
    if annotations:
        document["annotations"] = dict(annotations)
    return BuiltIndex(manifest=_manifest(document, media_type), children=members)


def build_signature(
    subject: Built, *, seed: int = 0, docker_reference: str = "example.com/app"
) -> BuiltImage:
    """A cosign-style signature: an OCI manifest whose layer is a simple-signing payload.

    Push it with tag `cosign_tag(subject.digest)`, as cosign does.
    """
    rng = random.Random(seed)
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": docker_reference},
                "image": {"docker-manifest-digest": subject.digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        },
        separators=(",", ":"),
    ).encode()
    layer = Layer(content=payload, gzipped=False)
    config = image_config([layer], architecture="", os="")
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
        "layers": [
            {
                "mediaType": COSIGN_SIMPLESIGNING,
                "digest": layer.digest,
                "size": len(payload),
                "annotations": {
                    COSIGN_SIGNATURE_ANNOTATION: base64.b64encode(rng.randbytes(64)).decode()
                },
            }
        ],
    }
    return BuiltImage(manifest=_manifest(document, OCI_MANIFEST), config=config, layers=[layer])


def build_referrer(
    subject: Built,
    *,
    artifact_type: str = "application/spdx+json",
    payload: bytes | None = None,
    seed: int = 0,
    annotations: Mapping[str, str] | None = None,
) -> BuiltImage:
    """An OCI 1.1 referrer of `subject` (an SBOM by default), with an empty config."""
    rng = random.Random(seed)
    data = payload if payload is not None else json.dumps({"sbom": rng.randbytes(8).hex()}).encode()
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": digest_of(EMPTY_JSON), "size": 2},
        "layers": [{"mediaType": artifact_type, "digest": digest_of(data), "size": len(data)}],
        "subject": {k: v for k, v in subject.descriptor().items() if k != "platform"},
    }
    if annotations:
        document["annotations"] = dict(annotations)
    return BuiltImage(
        manifest=_manifest(document, OCI_MANIFEST),
        config=EMPTY_JSON,
        layers=[],
        extra_blobs={digest_of(data): data},
    )


# --- writing sources: OCI layout, OCI archive, docker save --------------------------------


def _entries(
    image: Built | Mapping[str, Built], ref_name: str | None
) -> list[tuple[str | None, Built]]:
    if isinstance(image, Mapping):
        return list(image.items())
    return [(ref_name, image)]


def _layout_files(
    entries: Sequence[tuple[str | None, Built]],
    *,
    existing_index: dict[str, Any] | None = None,
    docker_names: bool = False,
) -> dict[str, bytes]:
    """The files of an OCI layout holding these images, by path inside the layout."""
    files: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}
    index = existing_index or {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    for ref_name, built in entries:
        descriptor = built.descriptor()
        descriptor.pop("platform", None)
        if ref_name:
            # Like skopeo: a ref name names one entry, so writing it again replaces that entry.
            index["manifests"] = [
                m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) != ref_name
            ]
            if docker_names:  # docker save (25+): the full name, and the tag as ref name
                tag = ref_name.rsplit(":", 1)[1] if ":" in ref_name else "latest"
                descriptor["annotations"] = {CONTAINERD_IMAGE_NAME: ref_name, REF_NAME: tag}
            else:
                descriptor["annotations"] = {REF_NAME: ref_name}
        index["manifests"].append(descriptor)
        for digest, data in built.blobs.items():
            files[blob_path(digest)] = data
        for manifest in built.manifests:
            files[blob_path(manifest.digest)] = manifest.body.encode()
    files["index.json"] = json.dumps(index, separators=(",", ":")).encode()
    return files


def write_oci_layout(
    path: Path, image: Built | Mapping[str, Built], ref_name: str | None = None
) -> Path:
    """Write (or add to) an OCI image layout directory. A mapping gives several ref names."""
    path.mkdir(parents=True, exist_ok=True)
    existing = path / "index.json"
    index = json.loads(existing.read_text()) if existing.exists() else None
    for name, data in _layout_files(_entries(image, ref_name), existing_index=index).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return path


def _write_tar(
    path: Path, files: Mapping[str, bytes], links: Mapping[str, str] | None = None
) -> Path:
    """A reproducible tar: fixed mtimes and owners, directories before their files."""
    links = links or {}
    path.parent.mkdir(parents=True, exist_ok=True)
    directories = sorted(
        {
            "/".join(name.split("/")[:i])
            for name in [*files, *links]
            for i in range(1, name.count("/") + 1)
        }
    )
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
        for name, target in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return path


def write_oci_archive(
    path: Path,
    image: Built | Mapping[str, Built],
    ref_name: str | None = None,
    *,
    docker_manifest: bool = False,
) -> Path:
    """Write an OCI archive (a tar of a layout), as `skopeo copy oci-archive:` does.

    `docker_manifest=True` writes what `docker save` writes since Docker 25: the layout plus a
    manifest.json, with ref names as full image names ("app:1.0").
    """
    entries = _entries(image, ref_name)
    files = _layout_files(entries, docker_names=docker_manifest)
    if docker_manifest:
        files["manifest.json"] = json.dumps(
            [
                {
                    "Config": blob_path(built.config_digest),
                    "RepoTags": [name] if name else [],
                    "Layers": [blob_path(d) for d in built.layer_digests],
                }
                for name, built in entries
                if isinstance(built, BuiltImage)
            ]
        ).encode()
    return _write_tar(path, files)


def _v1_layer_id(parent: str, diff_id: str) -> str:
    # docker save names layer directories by a chain id: unique per position in the stack.
    return hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


def write_docker_archive(
    path: Path,
    image: BuiltImage | Mapping[str, BuiltImage],
    repo_tag: str | None = "example/app:latest",
) -> Path:
    """Write a legacy `docker save` tarball: <config-hex>.json, <id>/layer.tar (uncompressed).

    A layer already written for another image is a symlink to the first copy, as docker does.
    """
    entries = list(image.items()) if isinstance(image, Mapping) else [(repo_tag, image)]
    files: dict[str, bytes] = {}
    links: dict[str, str] = {}
    written: dict[str, str] = {}  # diff_id -> layer.tar path
    manifest = []
    repositories: dict[str, dict[str, str]] = {}
    for name, built in entries:
        if not isinstance(built, BuiltImage):
            raise TypeError("docker save tarballs hold single-platform images only")
        config_name = f"{_hex(built.config_digest)}.json"
        files[config_name] = built.config
        layer_paths = []
        parent = ""
        for layer in built.layers:
            layer_id = _v1_layer_id(parent, layer.diff_id)
            layer_path = f"{layer_id}/layer.tar"
            if layer_path not in files and layer_path not in links:
                files[f"{layer_id}/VERSION"] = b"1.0"
                files[f"{layer_id}/json"] = json.dumps({"id": layer_id}).encode()
                if layer.diff_id in written:
                    links[layer_path] = f"../{written[layer.diff_id]}"
                else:
                    files[layer_path] = layer.content
                    written[layer.diff_id] = layer_path
            layer_paths.append(layer_path)
            parent = layer_id
        manifest.append(
            {"Config": config_name, "RepoTags": [name] if name else None, "Layers": layer_paths}
        )
        if name and ":" in name:
            repository, tag = name.rsplit(":", 1)
            repositories.setdefault(repository, {})[tag] = parent
    files["manifest.json"] = json.dumps(manifest).encode()
    if repositories:
        files["repositories"] = json.dumps(repositories).encode()
    return _write_tar(path, files, links)
