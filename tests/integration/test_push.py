"""`steward push` into the embedded ECR: single images, multi-arch, large layers, failures."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from chalicelib.ecr.errors import RepositoryNotFound
from chalicelib.ecr.gateway import Registry
from chalicelib.oci.manifests import (
    DOCKER_MANIFEST_V2,
    OCI_INDEX,
    digest_of,
)
from steward_tools.image_source import load_image
from steward_tools.image_source.errors import AmbiguousImage, CorruptBlob, ImageSourceError
from steward_tools.push import push_image
from steward_tools.samples import (
    Layer,
    build_image,
    build_index,
    build_referrer,
    write_docker_archive,
    write_oci_archive,
    write_oci_layout,
)
from tests.imagefactory import MiB, corrupt_blob, push_built


def _sha256_of_stream(reader: object) -> str:
    sha = hashlib.sha256()
    while chunk := reader.read(MiB):  # type: ignore[attr-defined]
        sha.update(chunk)
    return "sha256:" + sha.hexdigest()


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
