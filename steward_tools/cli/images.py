"""`steward push`, `steward images`, `steward sample-image`: images in and out of ECR."""

from __future__ import annotations

import random
from pathlib import Path

import click

from chalicelib.ecr.gateway import Registry
from steward_tools import samples
from steward_tools.cli.common import (
    echo_json,
    json_option,
    local_option,
    region_option,
    use_local_backend,
)
from steward_tools.cli.progress import Progress, human_bytes
from steward_tools.push import push_image


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.argument("target")
@click.option("--create", is_flag=True, help="Create the repository if it does not exist.")
@click.option("--ref", help="Which image of a layout holding several (its ref.name annotation).")
@region_option
@local_option
@json_option
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def push(
    source: Path,
    target: str,
    create: bool,
    ref: str | None,
    region: str | None,
    local: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Upload an image into ECR through the layer API.

    SOURCE is an OCI image layout directory, an OCI archive, or a `docker save` tarball.
    TARGET is REPOSITORY[:TAG] (no tag: pushed by digest).
    """
    repository, _, tag = target.partition(":")
    if not repository:
        raise click.BadParameter(f"{target!r}: expected REPOSITORY[:TAG]", param_hint="TARGET")
    if local:
        use_local_backend()

    registry = Registry(region=region)
    seen: dict[str, int] = {}
    with Progress(f"push {target}", quiet=quiet) as progress:

        def on_progress(digest: str, read: int) -> None:
            progress.update(read - seen.get(digest, 0))
            seen[digest] = read

        result = push_image(
            registry,
            source,
            repository,
            tag or None,
            ref=ref,
            create=create,
            on_progress=on_progress,
            on_missing=progress.add_total,
        )
    if as_json:
        echo_json(result.model_dump(mode="json"))
        return
    click.echo(f"{result.repository}{':' + result.tag if result.tag else ''}@{result.digest}")
    click.echo(
        f"  {result.blobs_uploaded} blobs uploaded ({human_bytes(result.bytes_uploaded)}), "
        f"{result.blobs_skipped} already present, {result.manifests_pushed} manifests",
        err=True,
    )


@click.command()
@click.argument("repository")
@region_option
@local_option
@json_option
def images(repository: str, region: str | None, local: bool, as_json: bool) -> None:
    """List a repository's images, newest first: digest, push time, media type, tags."""
    if local:
        use_local_backend()

    found = sorted(
        Registry(region=region).iter_images(repository),
        key=lambda image: image.pushed_at,
        reverse=True,
    )
    if as_json:
        echo_json(
            [
                {
                    "digest": image.digest,
                    "pushedAt": image.pushed_at.isoformat(),
                    "mediaType": image.media_type,
                    "tags": sorted(image.tags),
                }
                for image in found
            ]
        )
        return
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

    check_sample_path(path, source_format)
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


def check_sample_path(path: Path, source_format: str) -> None:
    """Refuse to write over what is not ours to replace: a layout is added to (the same --tag
    replaces its entry), an archive file is replaced, anything else is left alone."""
    if source_format == "oci-layout":
        if path.exists() and not path.is_dir():
            raise click.ClickException(
                f"{path} exists and is a file: an OCI layout is a directory; choose another PATH "
                "or --format oci-archive"
            )
        if path.is_dir() and any(path.iterdir()) and not (path / "oci-layout").exists():
            raise click.ClickException(
                f"{path} is a directory that is not an OCI layout: choose another PATH"
            )
    elif path.is_dir():
        raise click.ClickException(f"{path} is a directory: an archive is a file; choose a PATH")
