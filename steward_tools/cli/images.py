"""`steward push`, `steward images`, `steward sample-image`: images in and out of ECR."""

from __future__ import annotations

import random
from pathlib import Path

import click

from chalicelib.ecr.errors import RegistryError
from chalicelib.ecr.gateway import Registry
from steward_tools import samples
from steward_tools.cli.common import local_option, use_local_backend
from steward_tools.push import push_image


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.argument("target")
@click.option("--create", is_flag=True, help="Create the repository if it does not exist.")
@click.option("--ref", help="Which image of a layout holding several (its ref.name annotation).")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None)
@local_option
def push(
    source: Path, target: str, create: bool, ref: str | None, region: str | None, local: bool
) -> None:
    """Upload an image into ECR through the layer API.

    SOURCE is an OCI image layout directory, an OCI archive, or a `docker save` tarball.
    TARGET is REPOSITORY[:TAG] (no tag: pushed by digest).
    """
    if local:
        use_local_backend()

    repository, _, tag = target.partition(":")
    registry = Registry(region=region)

    def progress(message: str, nbytes: int) -> None:
        click.echo(f"  {message}", err=True)

    try:
        result = push_image(
            registry, source, repository, tag or None, ref=ref, create=create, on_progress=progress
        )
    except (RegistryError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{result.repository}{':' + result.tag if result.tag else ''}@{result.digest}")
    click.echo(
        f"  {result.blobs_uploaded} blobs uploaded ({result.bytes_uploaded} bytes), "
        f"{result.blobs_skipped} already present, {result.manifests_pushed} manifests",
        err=True,
    )


@click.command()
@click.argument("repository")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None)
@local_option
def images(repository: str, region: str | None, local: bool) -> None:
    """List a repository's images, newest first: digest, push time, media type, tags."""
    if local:
        use_local_backend()

    try:
        found = sorted(
            Registry(region=region).iter_images(repository),
            key=lambda image: image.pushed_at,
            reverse=True,
        )
    except RegistryError as error:
        raise click.ClickException(str(error)) from error
    for image in found:
        tags = ", ".join(sorted(image.tags)) or "<untagged>"
        pushed = image.pushed_at.strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{image.digest}  {pushed}  {image.media_type or '-'}  {tags}")


@click.command("sample-image")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "source_format",
    type=click.Choice(["oci-layout", "oci-archive", "docker-archive"]),
    default="oci-layout",
    show_default=True,
)
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    help="os/arch[/variant]; give it twice or more for a multi-arch index (OCI formats only).",
)
@click.option("--layers", default=2, show_default=True, help="Layers per image.")
@click.option("--layer-size", default=256 * 1024, show_default=True, help="Bytes per layer.")
@click.option("--seed", type=int, help="Same seed, same digests (default: a new image each time).")
@click.option(
    "--uncompressed", is_flag=True, help="Plain tar layers instead of gzip-compressed ones."
)
@click.option(
    "--tag",
    default="latest",
    show_default=True,
    help="The layout's org.opencontainers.image.ref.name (what skopeo's oci:PATH:TAG names).",
)
def sample_image(
    path: Path,
    source_format: str,
    platforms: tuple[str, ...],
    layers: int,
    layer_size: int,
    seed: int | None,
    uncompressed: bool,
    tag: str,
) -> None:
    """Write a small, valid image to PATH, to try `steward push` without docker."""

    seed = random.SystemRandom().randrange(2**32) if seed is None else seed
    images = []
    for n, platform in enumerate(platforms or ("linux/amd64",)):
        os_name, _, rest = platform.partition("/")
        arch, _, variant = rest.partition("/")
        images.append(
            samples.build_image(
                [layer_size] * layers,
                seed=seed + n,
                os=os_name,
                architecture=arch or "amd64",
                variant=variant or None,
                gzip_layers=not uncompressed,
            )
        )
    if len(images) > 1 and source_format == "docker-archive":
        raise click.UsageError("a docker save tarball holds no multi-arch index")
    built: samples.Built = images[0] if len(images) == 1 else samples.build_index(images)
    if source_format == "oci-layout":
        samples.write_oci_layout(path, built, ref_name=tag)
    elif source_format == "oci-archive":
        samples.write_oci_archive(path, built, ref_name=tag)
    else:
        # The Docker V2 manifest (and so the digest) is built from the tarball at push time.
        samples.write_docker_archive(path, images[0])
        click.echo(f"{path}: docker-archive, image id {images[0].config_digest}")
        return
    click.echo(f"{path}: {source_format}, {built.manifest.media_type}, {built.digest}")
