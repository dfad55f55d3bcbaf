"""Reading images to push: OCI layouts, OCI archives, `docker save` tarballs, before any upload."""

from __future__ import annotations

import io
import json
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from chalicelib.oci.manifests import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST_V2,
    OCI_INDEX,
    OCI_MANIFEST,
    digest_of,
)
from steward_tools.image_source import load_image
from steward_tools.image_source.errors import AmbiguousImage, CorruptBlob, ImageSourceError
from steward_tools.samples import (
    BuiltImage,
    build_image,
    build_index,
    build_referrer,
    write_docker_archive,
    write_oci_archive,
    write_oci_layout,
)
from tests.imagefactory import MiB, blob_bytes, corrupt_blob, docker_layer_digests


class TestOciLayout:
    def test_reads_a_single_image_exactly(self, tmp_path: Path) -> None:
        built = build_image(layer_sizes=[1024, 2048], seed=1)
        loaded = load_image(write_oci_layout(tmp_path / "layout", built, ref_name="1.2.3"))

        assert loaded.source_format == "oci-layout"
        assert loaded.names == ["1.2.3"]
        assert loaded.manifest == built.manifest
        assert loaded.manifests == [built.manifest]
        assert set(loaded.blobs) == set(built.blobs)
        for digest, data in built.blobs.items():
            assert loaded.blobs[digest].size == len(data)
            assert blob_bytes(loaded, digest) == data

    def test_manifest_without_media_type_takes_the_descriptors(self, tmp_path: Path) -> None:
        built = build_image(seed=2, declare_media_type=False)
        assert "mediaType" not in built.manifest.document

        loaded = load_image(write_oci_layout(tmp_path / "layout", built))

        assert loaded.media_type == OCI_MANIFEST
        assert loaded.manifest.body == built.manifest.body

    def test_index_lists_children_before_itself(self, tmp_path: Path) -> None:
        amd64 = build_image([1024], seed=1)
        arm64 = build_image([1024], seed=2, architecture="arm64", variant="v8")
        inner = build_index([amd64, arm64])
        outer = build_index([inner, build_image([512], seed=3, os="windows")])

        loaded = load_image(write_oci_layout(tmp_path / "layout", outer))

        assert loaded.media_type == OCI_INDEX
        assert [m.digest for m in loaded.manifests] == [m.digest for m in outer.manifests]
        assert loaded.manifests[-1].digest == outer.digest
        order = [m.digest for m in loaded.manifests]
        assert order.index(amd64.digest) < order.index(inner.digest) < order.index(outer.digest)
        assert set(loaded.blobs) == set(outer.blobs)
        assert loaded.blobs_of(loaded.manifests[-1]) == []

    def test_docker_manifest_list(self, tmp_path: Path) -> None:
        children = [build_image(seed=s, media_format="docker") for s in (1, 2)]
        built = build_index(children, media_format="docker")

        loaded = load_image(write_oci_layout(tmp_path / "layout", built))

        assert loaded.media_type == DOCKER_MANIFEST_LIST
        assert {m.media_type for m in loaded.manifests[:-1]} == {DOCKER_MANIFEST_V2}

    def test_several_images_are_picked_by_ref_name(self, tmp_path: Path) -> None:
        first, second = build_image(seed=1), build_image(seed=2)
        layout = write_oci_layout(tmp_path / "layout", {"1.0": first, "2.0": second})

        assert load_image(layout, ref="2.0").digest == second.digest
        assert load_image(layout, ref=first.digest).digest == first.digest
        with pytest.raises(AmbiguousImage) as raised:
            load_image(layout)
        assert "1.0" in str(raised.value) and "2.0" in str(raised.value)
        with pytest.raises(ImageSourceError, match=r"(?s)no image matches '3\.0'.*1\.0"):
            load_image(layout, ref="3.0")

    def test_adding_to_a_layout_keeps_what_is_there(self, tmp_path: Path) -> None:
        first, second = build_image(seed=1), build_image(seed=2)
        layout = write_oci_layout(tmp_path / "layout", first, ref_name="a")
        write_oci_layout(layout, second, ref_name="b")

        assert load_image(layout, ref="a").digest == first.digest
        assert load_image(layout, ref="b").digest == second.digest

    def test_one_image_under_two_names_is_not_ambiguous(self, tmp_path: Path) -> None:
        built = build_image(seed=1)
        layout = write_oci_layout(tmp_path / "layout", {"1.0": built, "latest": built})

        loaded = load_image(layout)

        assert loaded.digest == built.digest
        assert loaded.names == ["1.0", "latest"]

    def test_corrupt_manifest_is_named(self, tmp_path: Path) -> None:
        built = build_image(seed=1)
        layout = write_oci_layout(tmp_path / "layout", built)
        corrupt_blob(layout, built.digest)

        with pytest.raises(CorruptBlob) as raised:
            load_image(layout)
        assert raised.value.digest == built.digest
        assert built.digest in str(raised.value)

    def test_corrupt_layer_is_named_when_read(self, tmp_path: Path) -> None:
        built = build_image([4096], seed=1)
        layout = write_oci_layout(tmp_path / "layout", built)
        layer = built.layer_digests[0]
        corrupt_blob(layout, layer)

        loaded = load_image(layout)  # same size: only reading the bytes can tell
        with pytest.raises(CorruptBlob, match=layer.split(":")[1]) as raised:
            blob_bytes(loaded, layer)
        assert raised.value.digest == layer

    def test_truncated_layer_is_caught_without_reading_it(self, tmp_path: Path) -> None:
        built = build_image([4096], seed=1)
        layout = write_oci_layout(tmp_path / "layout", built)
        layer = built.layer_digests[0]
        blob = layout / "blobs" / "sha256" / layer.split(":")[1]
        blob.write_bytes(blob.read_bytes()[:-10])

        with pytest.raises(CorruptBlob, match="descriptor says"):
            load_image(layout)

    def test_missing_blob_is_named(self, tmp_path: Path) -> None:
        built = build_image([1024], seed=1)
        layout = write_oci_layout(tmp_path / "layout", built)
        (layout / "blobs" / "sha256" / built.config_digest.split(":")[1]).unlink()

        with pytest.raises(ImageSourceError, match=built.config_digest):
            load_image(layout)

    def test_missing_child_manifest_is_named(self, tmp_path: Path) -> None:
        child = build_image(seed=1)
        layout = write_oci_layout(tmp_path / "layout", build_index([child, build_image(seed=2)]))
        (layout / "blobs" / "sha256" / child.digest.split(":")[1]).unlink()

        with pytest.raises(ImageSourceError, match=f"manifest {child.digest}"):
            load_image(layout)

    def test_referrer_artifact_reads_like_any_manifest(self, tmp_path: Path) -> None:
        subject = build_image(seed=1)
        sbom = build_referrer(subject)

        loaded = load_image(write_oci_layout(tmp_path / "layout", sbom))

        assert loaded.manifest.subject() == subject.digest
        assert set(loaded.blobs) == set(sbom.blobs)

    def test_not_an_image(self, tmp_path: Path) -> None:
        (tmp_path / "empty").mkdir()
        (tmp_path / "text").write_text("hello")
        with pytest.raises(ImageSourceError, match=r"no index\.json"):
            load_image(tmp_path / "empty")
        with pytest.raises(ImageSourceError, match="neither"):
            load_image(tmp_path / "text")
        with pytest.raises(ImageSourceError, match="no such file"):
            load_image(tmp_path / "absent")


def test_readers_stream_layers_instead_of_loading_them(tmp_path: Path) -> None:
    built = build_image([24 * MiB], seed=1, gzip_layers=False)
    layer = built.diff_ids[0]
    archive = write_docker_archive(tmp_path / "save.tar", built)
    layout = write_oci_layout(tmp_path / "layout", built)
    del built

    for source in (archive, layout):
        tracemalloc.start()
        try:
            loaded = load_image(source)  # for docker save this hashes the layer
            with loaded.open_blob(layer) as reader:
                while reader.read(MiB):
                    pass
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 4 * MiB, source


class TestOciArchive:
    def test_reads_the_same_image_as_the_layout(self, tmp_path: Path) -> None:
        built = build_index([build_image([1024], seed=1), build_image([2048], seed=2)])
        archive = write_oci_archive(tmp_path / "image.tar", built, ref_name="v1")

        loaded = load_image(archive)

        assert loaded.source_format == "oci-archive"
        assert loaded.digest == built.digest
        assert [m.body for m in loaded.manifests] == [m.body for m in built.manifests]
        for digest, data in built.blobs.items():
            assert blob_bytes(loaded, digest) == data

    def test_docker_25_save_prefers_index_json(self, tmp_path: Path) -> None:
        built = build_image([1024], seed=1)
        archive = write_oci_archive(
            tmp_path / "image.tar", {"team/app:1.0": built}, docker_manifest=True
        )
        with tarfile.open(archive) as opened:
            assert {"manifest.json", "index.json"} <= set(opened.getnames())

        loaded = load_image(archive, ref="team/app:1.0")

        # From index.json: the image's own OCI manifest, not one rebuilt from manifest.json.
        assert loaded.source_format == "oci-archive"
        assert loaded.manifest.body == built.manifest.body
        assert load_image(archive, ref="1.0").digest == built.digest

    def test_corrupt_layer_in_an_archive(self, tmp_path: Path) -> None:
        built = build_image([4096], seed=1)
        layout = write_oci_layout(tmp_path / "layout", built)
        corrupt_blob(layout, built.layer_digests[0])
        archive = tmp_path / "image.tar"
        with tarfile.open(archive, "w") as writing:
            writing.add(layout, arcname=".")

        loaded = load_image(archive)
        with pytest.raises(CorruptBlob, match=built.layer_digests[0]):
            blob_bytes(loaded, built.layer_digests[0])


class TestDockerArchive:
    def test_builds_a_docker_v2_manifest(self, tmp_path: Path) -> None:
        built = build_image([1024, 2048], seed=1, media_format="docker")
        archive = write_docker_archive(tmp_path / "save.tar", built, "team/app:1.0")

        loaded = load_image(archive)

        assert loaded.source_format == "docker-archive"
        assert loaded.names == ["team/app:1.0"]
        assert loaded.media_type == DOCKER_MANIFEST_V2
        document = loaded.manifest.document
        assert loaded.digest == digest_of(loaded.manifest.body.encode())
        assert document["config"] == {
            "mediaType": DOCKER_CONFIG,
            "size": len(built.config),
            "digest": built.config_digest,
        }
        # docker save holds layers uncompressed: their digests are the config's diff_ids.
        assert [layer["mediaType"] for layer in document["layers"]] == [DOCKER_LAYER] * 2
        assert docker_layer_digests(loaded) == built.diff_ids
        assert [layer["size"] for layer in document["layers"]] == [
            len(layer.content) for layer in built.layers
        ]
        for layer in built.layers:
            assert blob_bytes(loaded, layer.diff_id) == layer.content

    def test_same_archive_gives_the_same_digest(self, tmp_path: Path) -> None:
        built = build_image([1024], seed=1)
        first = load_image(write_docker_archive(tmp_path / "a.tar", built))
        second = load_image(write_docker_archive(tmp_path / "b.tar", built))
        assert first.digest == second.digest

    def test_picks_by_repo_tag_and_follows_layer_links(self, tmp_path: Path) -> None:
        base = build_image([1024], seed=1)
        app = build_image([512], seed=2, base=base)
        # The app's own layer again, lower in the stack: docker save writes a symlink to it.
        other = build_image([256], seed=3, layers=[app.layers[-1]])
        archive = write_docker_archive(
            tmp_path / "save.tar", {"team/app:1.0": app, "team/other:2.0": other}
        )
        with tarfile.open(archive) as opened:
            assert any(member.issym() for member in opened.getmembers())

        loaded = load_image(archive, ref="team/other:2.0")

        assert docker_layer_digests(loaded) == other.diff_ids
        shared = app.layers[-1]
        assert blob_bytes(loaded, shared.diff_id) == shared.content
        assert load_image(archive, ref="1.0").names == ["team/app:1.0"]
        with pytest.raises(AmbiguousImage, match=r"team/other:2\.0"):
            load_image(archive)

    def test_layer_not_matching_its_diff_id_is_named(self, tmp_path: Path) -> None:
        built = build_image([1024], seed=1)
        archive = write_docker_archive(tmp_path / "save.tar", built)
        # Rewrite the archive with one byte of the layer flipped.
        rewritten = tmp_path / "corrupt.tar"
        with tarfile.open(archive) as source, tarfile.open(rewritten, "w") as target:
            for member in source.getmembers():
                data = source.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
                if member.name.endswith("layer.tar") and data:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                target.addfile(member, None if data is None else io.BytesIO(data))

        with pytest.raises(CorruptBlob, match=r"rootfs\.diff_ids\[0\]") as raised:
            load_image(rewritten)
        assert raised.value.digest == built.diff_ids[0]


def test_factory_is_reproducible() -> None:
    first: BuiltImage = build_image([100, 200], seed=42, labels={"team": "x"})
    again = build_image([100, 200], seed=42, labels={"team": "x"})
    other = build_image([100, 200], seed=43, labels={"team": "x"})
    assert first.digest == again.digest != other.digest
    config = json.loads(first.config)
    assert config["rootfs"]["diff_ids"] == first.diff_ids
    assert config["config"]["Labels"] == {"team": "x"}
