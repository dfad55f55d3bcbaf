"""push_image: local images (OCI layout, OCI archive, docker save) into ECR.

The readers are tested on their own first (no AWS); the end-to-end tests push through the
gateway into the embedded ECR and read the result back the way a client would.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from chalicelib.images import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST_V2,
    OCI_INDEX,
    OCI_MANIFEST,
    digest_of,
)
from chalicelib.registry import Registry, RepositoryNotFound
from steward_tools.push import (
    AmbiguousImage,
    CorruptBlob,
    ImageSourceError,
    LocalImage,
    load_image,
    push_image,
)
from steward_tools.samples import (
    BuiltImage,
    Layer,
    build_image,
    build_index,
    build_referrer,
    write_docker_archive,
    write_oci_archive,
    write_oci_layout,
)
from tests.imagefactory import corrupt_blob, push_built

MiB = 1024 * 1024


def _blob_bytes(image: LocalImage, digest: str) -> bytes:
    with image.open_blob(digest) as reader:
        return reader.read()


def _sha256_of_stream(reader: object) -> str:
    sha = hashlib.sha256()
    while chunk := reader.read(MiB):  # type: ignore[attr-defined]
        sha.update(chunk)
    return "sha256:" + sha.hexdigest()


def _docker_layer_digests(image: LocalImage) -> list[str]:
    return [layer["digest"] for layer in image.manifest.document["layers"]]


# --- readers: no AWS ------------------------------------------------------------------------


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
            assert _blob_bytes(loaded, digest) == data

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
            _blob_bytes(loaded, layer)
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
            assert _blob_bytes(loaded, digest) == data

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
            _blob_bytes(loaded, built.layer_digests[0])


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
        assert _docker_layer_digests(loaded) == built.diff_ids
        assert [layer["size"] for layer in document["layers"]] == [
            len(layer.content) for layer in built.layers
        ]
        for layer in built.layers:
            assert _blob_bytes(loaded, layer.diff_id) == layer.content

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

        assert _docker_layer_digests(loaded) == other.diff_ids
        shared = app.layers[-1]
        assert _blob_bytes(loaded, shared.diff_id) == shared.content
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


# --- end to end: into the embedded ECR ------------------------------------------------------


def _tags_by_digest(registry: Registry, repository: str) -> dict[str, list[str]]:
    return {image.digest: image.tags for image in registry.iter_images(repository)}


def _assert_landed(registry: Registry, repository: str, digest: str, tag: str) -> None:
    stored = registry.get_manifest(repository, tag=tag)
    assert stored.digest == digest
    assert digest_of(stored.body.encode()) == digest


@pytest.fixture
def repository(registry: Registry) -> str:
    registry.create_repository("team/app")
    return "team/app"


class TestPushSingleImage:
    def test_from_an_oci_layout(self, registry: Registry, repository: str, tmp_path: Path) -> None:
        built = build_image([1024, 2048], seed=1, revision="abc123")
        layout = write_oci_layout(tmp_path / "layout", built, ref_name="1.0")

        result = push_image(registry, layout, repository, "1.0")

        assert result.digest == built.digest == digest_of(built.manifest.body.encode())
        assert (result.blobs_uploaded, result.blobs_skipped, result.manifests_pushed) == (3, 0, 1)
        assert result.bytes_uploaded == sum(len(data) for data in built.blobs.values())
        _assert_landed(registry, repository, built.digest, "1.0")
        assert registry.get_manifest(repository, tag="1.0").body == built.manifest.body
        assert registry.missing_layers(repository, built.blobs) == []

    def test_from_an_oci_archive(self, registry: Registry, repository: str, tmp_path: Path) -> None:
        built = build_image([1024], seed=2, gzip_layers=False)
        archive = write_oci_archive(tmp_path / "image.tar", built, ref_name="1.0")

        result = push_image(registry, archive, repository, "2.0")

        assert result.digest == built.digest
        _assert_landed(registry, repository, built.digest, "2.0")

    def test_from_a_docker_save_tarball(
        self, registry: Registry, repository: str, tmp_path: Path
    ) -> None:
        built = build_image([1024, 4096], seed=3, media_format="docker")
        archive = write_docker_archive(tmp_path / "save.tar", built, "team/app:3.0")
        expected = load_image(archive)

        result = push_image(registry, archive, repository, "3.0")

        assert result.digest == expected.digest
        assert result.media_type == DOCKER_MANIFEST_V2
        _assert_landed(registry, repository, expected.digest, "3.0")
        stored = registry.get_manifest(repository, tag="3.0")
        assert stored.body == expected.manifest.body
        for layer in built.layers:
            with registry.open_blob(repository, layer.diff_id) as reader:
                assert reader.read() == layer.content

    def test_without_a_tag_lands_untagged(
        self, registry: Registry, repository: str, tmp_path: Path
    ) -> None:
        built = build_image(seed=4)
        result = push_image(registry, write_oci_layout(tmp_path / "l", built), repository, None)

        assert result.tag is None
        assert _tags_by_digest(registry, repository) == {built.digest: []}

    def test_progress_reports_bytes_of_each_uploaded_blob(
        self, registry: Registry, repository: str, tmp_path: Path
    ) -> None:
        built = build_image([1024, 2048], seed=5)
        seen: dict[str, int] = {}

        push_image(
            registry,
            write_oci_layout(tmp_path / "l", built),
            repository,
            "p",
            on_progress=lambda digest, sent: seen.__setitem__(digest, sent),
        )

        assert seen == {digest: len(data) for digest, data in built.blobs.items()}


class TestPushMultiArch:
    def test_index_lands_with_untagged_children_and_the_tag_on_the_index(
        self, registry: Registry, repository: str, tmp_path: Path
    ) -> None:
        amd64 = build_image([1024, 2048], seed=1)
        arm64 = build_image([1024, 2048], seed=2, architecture="arm64", variant="v8")
        index = build_index([amd64, arm64])
        layout = write_oci_layout(tmp_path / "layout", index, ref_name="1.0")

        result = push_image(registry, layout, repository, "1.0")

        assert result.digest == index.digest
        assert result.media_type == OCI_INDEX
        assert result.manifests_pushed == 3
        assert result.blobs_uploaded == len(index.blobs) == 6
        assert _tags_by_digest(registry, repository) == {
            index.digest: ["1.0"],
            amd64.digest: [],
            arm64.digest: [],
        }
        _assert_landed(registry, repository, index.digest, "1.0")
        for child in (amd64, arm64):
            stored = registry.get_manifest(repository, digest=child.digest)
            assert stored.body == child.manifest.body

    def test_nested_index_from_an_archive(
        self, registry: Registry, repository: str, tmp_path: Path
    ) -> None:
        inner = build_index([build_image(seed=1), build_image(seed=2, architecture="arm64")])
        outer = build_index([inner, build_referrer(inner)])
        archive = write_oci_archive(tmp_path / "image.tar", outer, ref_name="n")

        result = push_image(registry, archive, repository, "nested")

        assert result.manifests_pushed == 5
        tags = _tags_by_digest(registry, repository)
        assert tags.pop(outer.digest) == ["nested"]
        assert set(tags) == {m.digest for m in outer.manifests[:-1]}
        assert all(t == [] for t in tags.values())


class TestPushIsIncremental:
    def test_pushing_again_uploads_nothing(
        self, registry: Registry, repository: str, tmp_path: Path
    ) -> None:
        index = build_index([build_image([1024], seed=1), build_image([1024], seed=2)])
        layout = write_oci_layout(tmp_path / "layout", index)
        push_image(registry, layout, repository, "1.0")
        registry.calls.clear()

        again = push_image(registry, layout, repository, "1.0")

        assert again.blobs_uploaded == 0
        assert again.bytes_uploaded == 0
        assert again.blobs_skipped == len(index.blobs)
        assert again.manifests_pushed == 3
        assert registry.calls["initiate_layer_upload"] == 0
        _assert_landed(registry, repository, index.digest, "1.0")

    def test_a_layer_already_in_the_repository_is_not_uploaded(
        self, registry: Registry, repository: str, tmp_path: Path
    ) -> None:
        base = build_image([2048, 4096], seed=1)
        push_built(registry, base, repository, "base")
        app = build_image([512], seed=2, base=base)
        registry.calls.clear()

        result = push_image(registry, write_oci_layout(tmp_path / "l", app), repository, "app")

        # The app's own layer and its config are new; both base layers are already there.
        assert result.blobs_skipped == 2
        assert result.blobs_uploaded == 2
        assert result.bytes_uploaded == len(app.layers[-1].blob) + len(app.config)
        assert registry.calls["initiate_layer_upload"] == 2
        _assert_landed(registry, repository, app.digest, "app")

    def test_moving_a_tag_to_a_new_image(
        self, registry: Registry, repository: str, tmp_path: Path
    ) -> None:
        old, new = build_image(seed=1), build_image(seed=2)
        push_image(registry, write_oci_layout(tmp_path / "old", old), repository, "latest")
        push_image(registry, write_oci_layout(tmp_path / "new", new), repository, "latest")

        assert _tags_by_digest(registry, repository) == {old.digest: [], new.digest: ["latest"]}


class TestPushLargeLayer:
    def test_multi_part_layer_round_trips_byte_exactly(
        self, registry: Registry, repository: str, tmp_path: Path
    ) -> None:
        built = build_image([11 * MiB, 1024], seed=7, gzip_layers=False)
        big = built.layers[0]
        layout = write_oci_layout(tmp_path / "layout", built)

        result = push_image(registry, layout, repository, "big")

        assert result.bytes_uploaded >= 11 * MiB
        # One part each for the config and the small layer; the big one needs two at least.
        assert registry.calls["upload_layer_part"] - 2 >= 2
        with registry.open_blob(repository, big.digest) as reader:
            assert _sha256_of_stream(reader) == big.digest
        _assert_landed(registry, repository, built.digest, "big")

    def test_multi_part_layer_from_a_docker_save_tarball(
        self, registry: Registry, repository: str, tmp_path: Path
    ) -> None:
        built = build_image([11 * MiB], seed=8)
        archive = write_docker_archive(tmp_path / "save.tar", built)

        push_image(registry, archive, repository, "big")

        with registry.open_blob(repository, built.diff_ids[0]) as reader:
            assert _sha256_of_stream(reader) == built.diff_ids[0]


class TestPushFailures:
    def test_missing_repository_without_create(self, registry: Registry, tmp_path: Path) -> None:
        layout = write_oci_layout(tmp_path / "layout", build_image(seed=1))
        with pytest.raises(RepositoryNotFound):
            push_image(registry, layout, "absent/repo", "1.0")
        assert not [r.name for r in registry.iter_repositories() if r.name == "absent/repo"]

    def test_missing_repository_with_create(self, registry: Registry, tmp_path: Path) -> None:
        built = build_image(seed=1)
        layout = write_oci_layout(tmp_path / "layout", built)

        result = push_image(registry, layout, "new/repo", "1.0", create=True)

        assert result.digest == built.digest
        _assert_landed(registry, "new/repo", built.digest, "1.0")

    def test_corrupt_layer_fails_before_put_image(
        self, registry: Registry, repository: str, tmp_path: Path
    ) -> None:
        built = build_image([11 * MiB], seed=9, gzip_layers=False)
        layout = write_oci_layout(tmp_path / "layout", built)
        layer = built.layer_digests[0]
        corrupt_blob(layout, layer)
        registry.calls.clear()

        with pytest.raises(CorruptBlob, match=layer):
            push_image(registry, layout, repository, "1.0")

        assert registry.calls["put_image"] == 0
        assert registry.calls["complete_layer_upload"] <= 1  # the config, never the layer
        assert registry.missing_layers(repository, [layer]) == [layer]
        assert list(registry.iter_images(repository)) == []

    def test_corrupt_manifest_fails_before_any_call(
        self, registry: Registry, tmp_path: Path
    ) -> None:
        built = build_image(seed=1)
        layout = write_oci_layout(tmp_path / "layout", built)
        corrupt_blob(layout, built.digest)
        registry.calls.clear()

        with pytest.raises(CorruptBlob, match=built.digest):
            push_image(registry, layout, "never/created", "1.0", create=True)

        assert sum(registry.calls.values()) == 0

    def test_empty_blob_fails_before_any_call(self, registry: Registry, tmp_path: Path) -> None:
        # A zero-byte blob (no tar at all), which ECR refuses to take as a layer.
        built = build_image([], layers=[Layer(content=b"", gzipped=False)])
        layout = write_oci_layout(tmp_path / "layout", built)
        registry.calls.clear()

        with pytest.raises(ImageSourceError, match="empty blobs"):
            push_image(registry, layout, "never/created", "1.0", create=True)

        assert sum(registry.calls.values()) == 0

    def test_ambiguous_source_names_the_choices(
        self, registry: Registry, repository: str, tmp_path: Path
    ) -> None:
        layout = write_oci_layout(
            tmp_path / "layout", {"a": build_image(seed=1), "b": build_image(seed=2)}
        )
        with pytest.raises(AmbiguousImage, match="a -> sha256"):
            push_image(registry, layout, repository, "1.0")

        result = push_image(registry, layout, repository, "1.0", ref="b")
        assert result.digest == build_image(seed=2).digest


def test_factory_is_reproducible() -> None:
    first: BuiltImage = build_image([100, 200], seed=42, labels={"team": "x"})
    again = build_image([100, 200], seed=42, labels={"team": "x"})
    other = build_image([100, 200], seed=43, labels={"team": "x"})
    assert first.digest == again.digest != other.digest
    config = json.loads(first.config)
    assert config["rootfs"]["diff_ids"] == first.diff_ids
    assert config["config"]["Labels"] == {"team": "x"}
