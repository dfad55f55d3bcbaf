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
    from chalicelib.policy import PolicyError
    from steward_tools.local.runner import serve as run_service

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
    from chalicelib.registry import Registry, RegistryError
    from steward_tools.push import push_image

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
    import random

    from steward_tools import samples

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

    from steward_tools.local.server import EVENTS_QUEUE

    url = _local_queue_url(EVENTS_QUEUE)
    boto3.client("sqs").send_message(QueueUrl=url, MessageBody=file.read())
    click.echo(f"sent to {EVENTS_QUEUE}")


@events.command("dead-letters")
def events_dead_letters() -> None:
    """Print the events the service rejected, with their reasons (leaves them queued)."""
    import boto3

    from steward_tools.local.server import DEAD_LETTER_QUEUE

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


# --- governance --------------------------------------------------------------------------------


@main.group()
def governance() -> None:
    """Repository settings, declared and ephemeral repositories, as the policy declares them."""


governance_policy_option = click.option(
    "--policy",
    "policy_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Policy file (default: $STEWARD_POLICY, else policy.example.yaml).",
)
governance_now_option = click.option(
    "--now", "now_text", help="Evaluate TTLs at this ISO-8601 time (default: now)."
)


def _governance_inputs(policy_path: Path | None, now_text: str | None, local: bool) -> Any:
    from datetime import UTC, datetime

    from chalicelib.policy import PolicyError, current_policy, load_policy

    if local:
        use_local_backend()
    try:
        loaded = load_policy(policy_path) if policy_path else current_policy()
    except PolicyError as error:
        raise click.ClickException(str(error)) from error
    now = datetime.fromisoformat(now_text) if now_text else datetime.now(UTC)
    return loaded.policy, now


def _echo_governance_change(change: Any, outcome: str | None = None) -> None:
    label = f"{outcome:<9} " if outcome else ""
    click.echo(f"{label}{change.operation:<33} {change.repository:<32} {change.reason}")


@governance.command("plan")
@governance_policy_option
@governance_now_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--all", "show_all", is_flag=True, help="Also list settings already in sync.")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None)
@local_option
def governance_plan(
    policy_path: Path | None,
    now_text: str | None,
    as_json: bool,
    show_all: bool,
    region: str | None,
    local: bool,
) -> None:
    """Show the drift between the policy and the registry, and what apply would do."""
    policy, now = _governance_inputs(policy_path, now_text, local)
    from chalicelib.governance import plan_governance, read_registry
    from chalicelib.registry import Registry, RegistryError

    try:
        section = policy.governance
        plan = plan_governance(section, read_registry(Registry(region=region), section, now), now)
    except RegistryError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        click.echo(plan.model_dump_json(indent=2))
        return
    for change in plan.changes if show_all else plan.drift:
        _echo_governance_change(change)
    if not plan.drift:
        click.echo("no drift: every governed repository is as declared")


@governance.command("apply")
@governance_policy_option
@governance_now_option
@click.option("--dry-run", is_flag=True, help="Plan only; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None)
@local_option
def governance_apply(
    policy_path: Path | None,
    now_text: str | None,
    dry_run: bool,
    as_json: bool,
    region: str | None,
    local: bool,
) -> None:
    """Fix the drift: create declared repositories, fix settings, expire ephemeral ones."""
    policy, now = _governance_inputs(policy_path, now_text, local)
    from chalicelib.governance import reconcile
    from chalicelib.registry import Registry, RegistryError

    try:
        _, result = reconcile(
            Registry(region=region),
            policy.governance,
            now,
            dry_run=dry_run or policy.dry_run,
        )
    except RegistryError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        click.echo(json.dumps(result.summary(), indent=2, default=str))
    else:
        shown = [item for item in result.results if item.outcome != "kept"]
        for item in shown:
            _echo_governance_change(item.change, item.outcome)
            if item.detail:
                click.echo(f"{'':10}{item.detail}")
        if not shown:
            click.echo("no drift: every governed repository is as declared")
    if result.with_outcome("failed"):
        sys.exit(1)


# --- lifecycle -----------------------------------------------------------------------------------


@main.group()
def lifecycle() -> None:
    """ECR lifecycle policies: validate them, preview what they would expire or archive."""


def _read_lifecycle_policy(path: Path) -> Any:
    from chalicelib.lifecycle import LifecyclePolicyError, parse_policy

    try:
        return parse_policy(path.read_text())
    except LifecyclePolicyError as error:
        for issue in error.issues:
            click.echo(f"{path}: {issue}", err=True)
        sys.exit(1)


@lifecycle.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def lifecycle_validate(file: Path) -> None:
    """Check a lifecycle policy as ECR would; on error, name every bad field and exit 1."""
    policy = _read_lifecycle_policy(file)
    click.echo(f"{file}: valid ({len(policy.rules)} rules)")


@lifecycle.command("preview")
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Lifecycle policy JSON (with --repository: default the repository's own policy).",
)
@click.option(
    "--images",
    "images_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='What `aws ecr describe-images` prints: {"imageDetails": [...]}.',
)
@click.option(
    "--index-children",
    "children_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON {index digest: [child digests]}: children of a kept index are never expired.",
)
@click.option("--now", "now_text", help="Evaluate at this ISO-8601 time (default: now, UTC).")
@click.option("--explain", is_flag=True, help="Also print every image's decision and reason.")
@click.option("--repository", help="Ask ECR's own preview for this repository instead of --images.")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None)
@local_option
def lifecycle_preview(
    policy_path: Path | None,
    images_path: Path | None,
    children_path: Path | None,
    now_text: str | None,
    explain: bool,
    repository: str | None,
    region: str | None,
    local: bool,
) -> None:
    """Print get-lifecycle-policy-preview's `previewResults` and `summary` as JSON."""
    from datetime import UTC, datetime

    from chalicelib.lifecycle import evaluate_details

    if repository:
        if local:
            use_local_backend()
        from chalicelib.lifecycle import preview_repository
        from chalicelib.registry import Registry, RegistryError

        if policy_path:
            _read_lifecycle_policy(policy_path)
        text = policy_path.read_text() if policy_path else None
        try:
            preview = preview_repository(Registry(region=region), repository, text)
        except RegistryError as error:
            raise click.ClickException(str(error)) from error
        shown = {"previewResults": preview.results, "summary": preview.summary}
        click.echo(json.dumps(shown, indent=2, default=str))
        return
    if not policy_path or not images_path:
        raise click.UsageError("give --policy and --images (or --repository)")
    policy = _read_lifecycle_policy(policy_path)
    document = json.loads(images_path.read_text())
    details = document.get("imageDetails", []) if isinstance(document, dict) else document
    children = json.loads(children_path.read_text()) if children_path else None
    now = datetime.fromisoformat(now_text) if now_text else datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    try:
        plan = evaluate_details(policy, details, now, index_children=children)
    except (KeyError, ValueError) as error:
        raise click.ClickException(f"{images_path}: not describe-images output: {error}") from error
    if explain:
        for decision in plan.decisions:
            action = decision.action or "keep"
            click.echo(f"{decision.digest}  {action:<10} {decision.reason}", err=True)
    shown = {"previewResults": plan.preview_results(), "summary": plan.summary()}
    click.echo(json.dumps(shown, indent=2))


# --- gate --------------------------------------------------------------------------------------


@main.group()
def gate() -> None:
    """The scan gate's decisions."""


@gate.command("status")
@click.argument("image")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None)
@local_option
def gate_status_command(image: str, region: str | None, local: bool) -> None:
    """The decision for REPOSITORY@DIGEST: verdict, reasons, counts, tags, policy version."""
    if local:
        use_local_backend()
    if region:
        os.environ["AWS_DEFAULT_REGION"] = region
    repository, _, digest = image.partition("@")
    if not repository or not digest:
        raise click.BadParameter("expected REPOSITORY@DIGEST", param_hint="IMAGE")
    from chalicelib.gate import gate_status

    record = gate_status(repository, digest)
    if record is None:
        raise click.ClickException(f"no gate record for {image}")
    decision = record.get("decision") or {}
    click.echo(f"{repository}@{digest}: {record['status']}")
    for reason in decision.get("reasons", []):
        click.echo(f"  {reason}")
    click.echo(json.dumps(record, indent=2))


# --- retention and the sweep -------------------------------------------------------------------


@main.group()
def retention() -> None:
    """Show what retention would keep and delete, and why."""


def _retention_inputs(repository: str, region: str | None, local: bool) -> tuple[Any, Any]:
    if local:
        use_local_backend()
    from chalicelib.registry import Registry

    registry = Registry(region=region)
    return registry, registry.describe_repository(repository)


def _now(value: str | None) -> Any:
    from datetime import UTC, datetime

    if value is None:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _load_policy_or_exit(path: Path | None) -> Any:
    from chalicelib.policy import PolicyError, current_policy, load_policy

    try:
        return (load_policy(path) if path else current_policy()).policy
    except PolicyError as error:
        raise click.ClickException(str(error)) from error


def _grace_marks(repository: str) -> Any:
    """The sweep's first-marked times (read only), so the plan shows the real grace deadlines."""
    from chalicelib.retention_marks import MarkStore
    from chalicelib.settings import get_settings

    try:
        return MarkStore(get_settings().retention_table).load(repository)
    except Exception as error:  # no table or no access: plan as if nothing were marked yet
        click.echo(f"note: grace-period marks not read ({error})", err=True)
        return None


def _decision_line(decision: Any) -> str:
    tags = ",".join(decision.tags) or "-"
    held = f"  [not now: {decision.deferred}]" if decision.deferred else ""
    return (
        f"{decision.action:<6}  {decision.digest[:19]}…  {decision.pushed_at:%Y-%m-%d %H:%M}  "
        f"{decision.role:<8}  {tags}  {decision.reason}{held}"
    )


@retention.command("plan")
@click.option("--repository", "-r", required=True)
@click.option("--policy", "policy_path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the whole plan as JSON.")
@click.option("--now", help="Plan as of this ISO-8601 moment (default: now).")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None)
@local_option
def retention_plan(
    repository: str,
    policy_path: Path | None,
    as_json: bool,
    now: str | None,
    region: str | None,
    local: bool,
) -> None:
    """Every image of REPOSITORY with keep or delete and the reason. Deletes nothing."""
    from chalicelib.registry import RegistryError
    from chalicelib.retention import plan_for_repository

    policy = _load_policy_or_exit(policy_path)
    try:
        registry, info = _retention_inputs(repository, region, local)
        plan = plan_for_repository(
            registry,
            policy.retention,
            info,
            _now(now),
            dry_run=policy.dry_run,
            marks=_grace_marks(repository) if policy.retention.grace_period_days else None,
        )
    except RegistryError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        click.echo(plan.model_dump_json(indent=2))
        return
    for decision in plan.decisions:
        click.echo(_decision_line(decision))
    deletes = [d for d in plan.decisions if d.action == "delete"]
    click.echo(
        f"{repository}: {plan.images} images, {len(deletes)} to delete "
        f"({len(plan.deletions)} this run), {plan.images - len(deletes)} kept"
    )
    for note in [*plan.notes, *([plan.capped] if plan.capped else [])]:
        click.echo(f"note: {note}")


@retention.command("diff")
@click.argument("old_policy", type=click.Path(exists=True, path_type=Path))
@click.argument("new_policy", type=click.Path(exists=True, path_type=Path))
@click.option("--repository", "-r", required=True)
@click.option("--now", help="Compare as of this ISO-8601 moment (default: now).")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None)
@local_option
def retention_diff(
    old_policy: Path,
    new_policy: Path,
    repository: str,
    now: str | None,
    region: str | None,
    local: bool,
) -> None:
    """What changing OLD_POLICY to NEW_POLICY would delete (+) or spare (-) in REPOSITORY."""
    from chalicelib.registry import RegistryError
    from chalicelib.retention import diff_plans, plan_for_repository, read_repository

    old, new = _load_policy_or_exit(old_policy), _load_policy_or_exit(new_policy)
    moment = _now(now)
    try:
        registry, info = _retention_inputs(repository, region, local)
        contents = read_repository(registry, repository)
        plans = [
            plan_for_repository(registry, p.retention, info, moment, contents=contents)
            for p in (old, new)
        ]
    except RegistryError as error:
        raise click.ClickException(str(error)) from error
    changes = diff_plans(*plans)
    for change in changes:
        sign = "+" if change.after.action == "delete" else "-"
        click.echo(
            f"{sign} {change.digest[:19]}…  {','.join(change.tags) or '-'}  "
            f"{change.after.action}: {change.after.reason}  (was {change.before.action}: "
            f"{change.before.reason})"
        )
    more = sum(1 for c in changes if c.after.action == "delete")
    click.echo(f"{repository}: {more} more deleted, {len(changes) - more} more kept")


@main.group("sweep")
def sweep_group() -> None:
    """The scheduled sweep (retention and other per-repository tasks)."""


@sweep_group.command("run")
@click.option("--queue", envvar="STEWARD_SWEEP_QUEUE", help="Repository-job queue name or URL.")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None)
@local_option
def sweep_run(queue: str | None, region: str | None, local: bool) -> None:
    """Start a sweep now: one job per repository in scope onto the repository-job queue."""
    if local:
        use_local_backend()
    from datetime import UTC, datetime

    from chalicelib.registry import Registry
    from chalicelib.sweep import start_sweep
    from steward_tools.local.runner import ACCOUNT

    registry = Registry(region=region)
    summary = start_sweep(
        registry,
        account=ACCOUNT if local else "",
        region=registry.region,
        now=datetime.now(UTC),
        queue=queue,
    )
    click.echo(json.dumps(summary))


# --- login (token API) ----------------------------------------------------------------------------


@main.command()
@click.argument("registry")
@click.option("--repository", help="A repository the credential must cover.")
@click.option("--access", type=click.Choice(["pull", "push"]), default="pull", show_default=True)
@click.option("--api", envvar="STEWARD_API_URL", required=True, help="The API's base URL.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the credential into this docker config.json instead of running docker login.",
)
@click.option("--docker", "docker_command", default="docker", show_default=True, hidden=True)
@click.option(
    "--local-registry",
    envvar="STEWARD_LOCAL_REGISTRY",
    help="Log in to the embedded registry at this address (127.0.0.1:5000) instead of ECR's host.",
)
def login(
    registry: str,
    repository: str | None,
    access: str,
    api: str,
    config_path: Path | None,
    docker_command: str,
    local_registry: str | None,
) -> None:
    """Get a scoped credential for REGISTRY from the token API and log docker in with it.

    The caller's JWT comes from STEWARD_TOKEN, STEWARD_TOKEN_FILE or GitHub Actions' OIDC.
    """
    from steward_tools.credhelper import (
        TokenApiError,
        api_registry,
        caller_token,
        docker_login,
        fetch_token,
        for_local_registry,
        merge_docker_config,
    )

    output = "docker-config" if config_path else "login"
    environ = {"STEWARD_LOCAL_REGISTRY": local_registry} if local_registry else {}
    try:
        body = fetch_token(
            api,
            api_registry(registry, environ),
            access=access,
            repository=repository,
            output=output,
            bearer=caller_token(),
        )
    except TokenApiError as error:
        raise click.ClickException(str(error)) from None
    if local_registry:
        body = for_local_registry(body, local_registry)
    if config_path:
        merge_docker_config(config_path, body)
        click.echo(f"wrote {', '.join(body['auths'])} to {config_path} (until {body['expiresAt']})")
        return
    status = docker_login(body, docker_command)
    if status:
        raise click.ClickException(f"docker login failed ({status})")
    click.echo(f"logged in to {body['proxyEndpoint']} until {body['expiresAt']}")


# --- replicate ---------------------------------------------------------------------------------


@main.group(invoke_without_command=True)
@click.option("--rule", "rule_name", help="The replication rule (its `name` in the policy).")
@click.option("--dry-run", is_flag=True, help="Show what would be copied; copy nothing.")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None, help="Source region.")
@local_option
@click.pass_context
def replicate(
    ctx: click.Context, rule_name: str | None, dry_run: bool, region: str | None, local: bool
) -> None:
    """Backfill: copy the existing images a replication rule selects, only what is missing."""
    if ctx.invoked_subcommand is not None:
        return
    if not rule_name:
        raise click.UsageError("--rule NAME is required")
    if local:
        use_local_backend()
    from tqdm import tqdm

    from chalicelib.policy import PolicyError
    from chalicelib.registry import RegistryError
    from chalicelib.replication import run_backfill

    bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, leave=False)
    done = {"images": 0, "total": 0}

    def on_jobs(jobs: list[Any]) -> None:
        done["total"] = len(jobs)
        bar.set_description(f"images 0/{len(jobs)}")

    def on_image(result: Any) -> None:
        done["images"] += 1
        bar.set_description(f"images {done['images']}/{done['total']}")
        if dry_run:
            for line in [f"{result.source} → {result.destination}", *result.plan]:
                tqdm.write(f"  {line}", file=sys.stderr)

    try:
        summary = run_backfill(
            rule_name,
            region=region,
            dry_run=dry_run,
            on_jobs=on_jobs,
            on_bytes=bar.update,
            on_image=on_image,
        )
    except (LookupError, PolicyError, RegistryError) as error:
        raise click.ClickException(str(error)) from error
    finally:
        bar.close()
    for failure in summary.errors:
        click.echo(f"failed: {failure}", err=True)
    moved = (
        f"{summary.bytes_planned} bytes to move"
        if dry_run
        else f"{summary.bytes_moved} bytes moved"
    )
    click.echo(
        f"rule {summary.rule}{' (dry run)' if dry_run else ''}: {summary.images} images "
        f"({summary.copied} copied, {summary.unchanged} already there, {summary.failed} failed), "
        f"{moved}, {summary.bytes_skipped} bytes skipped (already at the destination)"
    )
    if summary.failed:
        sys.exit(1)


@replicate.command("native")
@click.option("--rule", "rule_name", required=True, help="The replication rule to express.")
@click.option("--dry-run", is_flag=True, help="Show the configuration; do not write it.")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None, help="Source region.")
@local_option
def replicate_native(rule_name: str, dry_run: bool, region: str | None, local: bool) -> None:
    """Write ECR's own replication configuration for a rule ECR can express, or say why not."""
    if local:
        use_local_backend()
    from chalicelib.policy import PolicyError
    from chalicelib.registry import RegistryError
    from chalicelib.replication import run_native

    try:
        plan = run_native(rule_name, region=region, apply=not dry_run)
    except (LookupError, PolicyError, RegistryError) as error:
        raise click.ClickException(str(error)) from error
    if not plan.expressible:
        click.echo(f"rule {rule_name}: ECR's replication cannot express it:", err=True)
        for reason in plan.reasons:
            click.echo(f"  - {reason}", err=True)
        click.echo("ecr-steward's own replication (on push, or `steward replicate`) can.", err=True)
        sys.exit(2)
    click.echo(json.dumps({"rules": plan.configuration}, indent=2))
    for note in plan.reasons:
        click.echo(f"note: {note}", err=True)
    verb = "would write" if dry_run else "wrote"
    click.echo(f"rule {rule_name}: {verb} put-replication-configuration", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
