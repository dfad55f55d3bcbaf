"""Mirroring against a real registry: the CNCF distribution registry, anonymous, behind Basic
auth (htpasswd) and behind a token server of our own (the bearer flow). A multi-arch image with a
cosign signature and an SBOM referrer goes from it into the embedded ECR and back out to it:
digests equal on all sides, every tag resolves, a second run moves 0 bytes, and an upload
broken in the middle resumes where the registry says it stopped."""

from __future__ import annotations

from pathlib import Path

import pytest

import chalicelib.registry_client.copyblob as copyblob
from chalicelib.ecr.distribution import registry_client
from chalicelib.kernel.aws import reset as reset_clients
from chalicelib.oci.referrers import cosign_tag
from chalicelib.registry_client.auth import anonymous, basic
from chalicelib.registry_client.blobs import head_blob
from chalicelib.registry_client.manifests import get_manifest, put_manifest
from chalicelib.registry_client.referrers import add_to_fallback_index, list_referrers
from chalicelib.registry_client.transport import Endpoint, RegistryClient
from chalicelib.registry_client.uploads import finish_upload, send_part, start_upload
from chalicelib.replication.copy import copy_from_upstream
from chalicelib.replication.jobs import CopyJob, Target, Upstream
from chalicelib.replication.v2copy import copy_over_v2
from steward_tools.samples import Built, build_image, build_index, build_referrer, build_signature
from tests.conftest import ACCOUNT, REGION
from tests.distribution import PASSWORD, USER, TokenFront, available, distribution

MiB = 1024 * 1024
pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


@pytest.fixture(autouse=True)
def _fresh_clients(aws):
    reset_clients()
    yield
    reset_clients()


def push(client: RegistryClient, repository: str, built: Built, tag: str | None = None) -> None:
    """Push with the client under test's own operations (as oras would: a referrer is also
    listed in its subject's fallback tag index, distribution 2.8 having no referrers API)."""
    for digest, data in built.blobs.items():
        if head_blob(client, repository, digest) is None:
            upload = start_upload(client, repository)
            assert upload is not None
            upload = send_part(client, upload, [data], 0, len(data))
            finish_upload(client, upload, digest)
    for manifest in built.manifests:
        reference = tag if tag and manifest.digest == built.digest else manifest.digest
        body = manifest.body.encode()
        put = put_manifest(client, repository, reference, body, manifest.media_type)
        subject = manifest.subject()
        if subject and not put.subject_indexed:
            descriptor = {"mediaType": manifest.media_type, "digest": manifest.digest}
            add_to_fallback_index(client, repository, subject, {**descriptor, "size": len(body)})


def mirror_job(url: str, source: str, digest: str, tags: list[str], destination: str) -> CopyJob:
    return CopyJob(
        rule="mirror:upstream",
        trigger="test",
        source_account=ACCOUNT,
        source_region=REGION,
        source_repository=source,
        digest=digest,
        tags=tags,
        destination=Target(account=ACCOUNT, region=REGION, repository=destination),
        upstream=Upstream(url=url),
    )


@pytest.mark.parametrize("auth", ["anonymous", "basic", "bearer"])
def test_mirror_a_signed_multiarch_image_in_and_back_out(
    aws, registry, tmp_path: Path, auth: str
) -> None:
    with distribution(tmp_path, basic=auth == "basic") as url:
        front = TokenFront(url) if auth == "bearer" else None
        if front is not None:
            front.__enter__()
            url = front.url
        try:
            credentials = anonymous if auth == "anonymous" else basic(USER, PASSWORD)
            upstream = RegistryClient(Endpoint(url=url, credentials=credentials))
            index = build_index(
                [
                    build_image([3 * MiB], seed=31),
                    build_image([2048], seed=32, architecture="arm64"),
                ]
            )
            signature = build_signature(index, seed=33)
            sbom = build_referrer(index, seed=34)
            push(upstream, "upstream/app", index, "2.0.0")
            push(upstream, "upstream/app", signature, cosign_tag(index.digest))
            push(upstream, "upstream/app", sbom)
            job = mirror_job(url, "upstream/app", index.digest, ["2.0.0"], "mirror/app")

            first = copy_from_upstream(job, source=upstream, destination=registry)

            assert first.status == "copied" and first.protocol == "v2" and first.repository_created
            for manifest in [*index.manifests, signature.manifest, sbom.manifest]:
                got = registry.get_manifest("mirror/app", digest=manifest.digest)
                assert got.body == manifest.body
            assert registry.describe_image("mirror/app", tag="2.0.0").digest == index.digest
            sig = registry.describe_image("mirror/app", tag=cosign_tag(index.digest))
            assert sig.digest == signature.digest
            found = registry.describe_image("mirror/app", digest=sbom.digest)
            assert found.subject_digest == index.digest
            blobs = {**index.blobs, **signature.blobs, **sbom.blobs}
            assert first.bytes_moved == sum(len(b) for b in blobs.values())  # minimum: 1.00

            second = copy_from_upstream(job, source=upstream, destination=registry)
            assert (second.status, second.bytes_moved, second.manifests_put) == ("unchanged", 0, 0)

            back = mirror_job(url, "mirror/app", index.digest, ["2.0.0"], "returned/app")
            out = copy_over_v2(back, source=registry_client(registry), destination=upstream)
            assert out.status == "copied"
            assert get_manifest(upstream, "returned/app", "2.0.0").digest == index.digest
            tag = cosign_tag(index.digest)
            assert get_manifest(upstream, "returned/app", tag).digest == signature.digest
            for manifest in [*index.manifests, signature.manifest, sbom.manifest]:
                assert get_manifest(upstream, "returned/app", manifest.digest).body == (
                    manifest.body.encode()
                )
            referrers = list_referrers(upstream, "returned/app", index.digest)
            assert sbom.digest in {r["digest"] for r in referrers}
            if front is not None:
                assert front.issued >= 1
        finally:
            if front is not None:
                front.__exit__()


def test_an_interrupted_mirror_resumes_where_the_registry_stopped(
    aws, registry, tmp_path: Path, monkeypatch
) -> None:
    with distribution(tmp_path) as url:
        upstream = RegistryClient(Endpoint(url=url))
        image = build_image([12 * MiB], seed=35, gzip_layers=False)
        push(upstream, "upstream/big", image, "1.0")
        job = mirror_job(url, "upstream/big", image.digest, ["1.0"], "mirror/big")
        monkeypatch.setattr(copyblob, "PART_SIZE", 5 * MiB)
        real = copyblob.send_part
        broken: list[int] = []

        def send_part_cut(client, upload, body, first, length):
            if first == 5 * MiB and not broken:
                broken.append(first)

                def cut():
                    for n, piece in enumerate(body):
                        if n == 1:
                            raise ConnectionResetError("connection reset by peer")
                        yield piece

                return real(client, upload, cut(), first, length)
            return real(client, upload, body, first, length)

        monkeypatch.setattr(copyblob, "send_part", send_part_cut)

        result = copy_from_upstream(job, source=upstream, destination=registry)

        assert broken and result.layer_restarts == 1
        assert registry.describe_image("mirror/big", tag="1.0").digest == image.digest
        # Resumed from the registry's Range, not from byte 0: at most the broken part again.
        total = sum(len(b) for b in image.blobs.values())
        assert total < result.bytes_moved <= total + 5 * MiB
