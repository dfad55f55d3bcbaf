"""`steward`: the operator's command line (installed with the `cli` extra, never in a function)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def local_endpoint() -> str:
    host = os.environ.get("STEWARD_HOST", "127.0.0.1")
    return f"http://{host}:{os.environ.get('STEWARD_AWS_PORT', '5000')}"


def use_local_backend() -> None:
    """Point boto3 at the embedded backend that `steward serve` runs, with its dummy keys."""
    os.environ["AWS_ENDPOINT_URL"] = local_endpoint()
    for key, value in LOCAL_CREDENTIALS.items():
        os.environ.setdefault(key, value)


local_option = click.option(
    "--local",
    is_flag=True,
    help="Talk to the embedded backend of `steward serve` (127.0.0.1:$STEWARD_AWS_PORT).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ecr-steward")
def main() -> None:
    """ecr-steward: event-driven image management for Amazon ECR."""


# --- serve -------------------------------------------------------------------------------------


@main.command()
@click.option("--host", envvar="STEWARD_HOST", default="127.0.0.1", show_default=True)
@click.option("--aws-port", envvar="STEWARD_AWS_PORT", default=5000, show_default=True, type=int)
@click.option("--api-port", envvar="STEWARD_API_PORT", default=8000, show_default=True, type=int)
@click.option(
    "--data-dir",
    envvar="STEWARD_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the embedded registry keeps layer bytes (default: a temporary directory).",
)
def serve(host: str, aws_port: int, api_port: int, data_dir: Path | None) -> None:
    """Run the service on the embedded AWS backend until Ctrl-C."""
    from chalicelib.local.runner import serve as run_service
    from chalicelib.policy import PolicyError

    try:
        run_service(host=host, aws_port=aws_port, api_port=api_port, data_dir=data_dir)
    except PolicyError as error:
        raise click.ClickException(str(error)) from error


# --- push --------------------------------------------------------------------------------------


@main.command()
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
    from chalicelib.push import push_image
    from chalicelib.registry import Registry, RegistryError

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


# --- images ------------------------------------------------------------------------------------


@main.command()
@click.argument("repository")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None)
@local_option
def images(repository: str, region: str | None, local: bool) -> None:
    """List a repository's images, newest first: digest, push time, media type, tags."""
    if local:
        use_local_backend()
    from chalicelib.registry import Registry, RegistryError

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


# --- sample-image ------------------------------------------------------------------------------


@main.command("sample-image")
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
def sample_image(
    path: Path,
    source_format: str,
    platforms: tuple[str, ...],
    layers: int,
    layer_size: int,
    seed: int | None,
) -> None:
    """Write a small, valid image to PATH, to try `steward push` without docker."""
    import random

    from chalicelib import samples

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
            )
        )
    if len(images) > 1 and source_format == "docker-archive":
        raise click.UsageError("a docker save tarball holds no multi-arch index")
    built: samples.Built = images[0] if len(images) == 1 else samples.build_index(images)
    if source_format == "oci-layout":
        samples.write_oci_layout(path, built)
    elif source_format == "oci-archive":
        samples.write_oci_archive(path, built)
    else:
        # The Docker V2 manifest (and so the digest) is built from the tarball at push time.
        samples.write_docker_archive(path, images[0])
        click.echo(f"{path}: docker-archive, image id {images[0].config_digest}")
        return
    click.echo(f"{path}: {source_format}, {built.manifest.media_type}, {built.digest}")


# --- policy ------------------------------------------------------------------------------------


@main.group()
def policy() -> None:
    """Validate the policy file and export its JSON Schema."""


@policy.command("validate")
@click.argument("file", type=click.Path(path_type=Path))
def policy_validate(file: Path) -> None:
    """Check a policy file; on error, name every bad field and exit 1."""
    from chalicelib.policy import PolicyError, load_policy

    try:
        loaded = load_policy(file)
    except PolicyError as error:
        click.echo(str(error), err=True)
        sys.exit(1)
    rules = loaded.policy.tagging
    click.echo(f"{file}: valid ({len(rules)} tagging rules, {loaded.fingerprint[:19]})")


@policy.command("schema")
def policy_schema_command() -> None:
    """Print the policy's JSON Schema (point your editor's YAML support at it)."""
    from chalicelib.policy import policy_schema

    click.echo(json.dumps(policy_schema(), indent=2))


# --- events (local) ----------------------------------------------------------------------------


@main.group()
def events() -> None:
    """Send events to the local service and read its dead-letter queue."""


def _local_queue_url(name: str) -> str:
    use_local_backend()
    import boto3

    return str(boto3.client("sqs").get_queue_url(QueueName=name)["QueueUrl"])


@events.command("send")
@click.argument("file", type=click.File("r"))
def events_send(file: Any) -> None:
    """Deliver FILE's JSON to `on_ecr_event` as EventBridge would (any payload, valid or not)."""
    import boto3

    from chalicelib.local.server import EVENTS_QUEUE

    url = _local_queue_url(EVENTS_QUEUE)
    boto3.client("sqs").send_message(QueueUrl=url, MessageBody=file.read())
    click.echo(f"sent to {EVENTS_QUEUE}")


@events.command("dead-letters")
def events_dead_letters() -> None:
    """Print the events the service rejected, with their reasons (leaves them queued)."""
    import boto3

    from chalicelib.local.server import DEAD_LETTER_QUEUE

    url = _local_queue_url(DEAD_LETTER_QUEUE)
    sqs = boto3.client("sqs")
    seen: set[str] = set()
    while True:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=2, WaitTimeSeconds=0
        ).get("Messages", [])
        fresh = [m for m in batch if m["MessageId"] not in seen]
        if not fresh:
            break
        for message in fresh:
            seen.add(message["MessageId"])
            click.echo(message["Body"])


if __name__ == "__main__":  # pragma: no cover
    main()
