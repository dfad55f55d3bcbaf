"""`steward findings set|clear`: what the embedded ECR's scans find, per image or per repository.

The findings are SSM parameters of the embedded backend (steward_tools/local/scanning.py reads
them at each scan), so they work with `make run` from any shell. They exist only locally: on AWS,
ECR's scanner decides."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import click

from chalicelib.ecr.errors import ImageNotFound, RepositoryNotFound
from chalicelib.ecr.gateway import Registry
from steward_tools.cli.common import (
    apply_region,
    echo_json,
    json_option,
    region_option,
    use_local_backend,
)
from steward_tools.local.scanning import (
    SEVERITY_ORDER,
    SSM_FINDINGS_PREFIX,
    image_findings_parameter,
)


@click.group()
def findings() -> None:
    """Set what the embedded ECR's scans find (local only: on AWS, ECR's scanner decides).

    TARGET is REPOSITORY (every image scanned in it from then on), REPOSITORY@DIGEST or
    REPOSITORY:TAG (one image; a tag is resolved to its digest now). An image's own findings win
    over its repository's; with neither, an image scans clean."""


def parse_finding(text: str) -> dict[str, Any]:
    """`CVE-2024-0001:CRITICAL` -> a finding."""
    name, _, severity = text.rpartition(":")
    severity = severity.upper()
    if not name or severity not in SEVERITY_ORDER:
        raise click.BadParameter(
            f"{text!r}: expected NAME:SEVERITY, SEVERITY one of {', '.join(SEVERITY_ORDER)}",
            param_hint="--finding",
        )
    return {"name": name, "severity": severity}


def read_findings(path: Path) -> list[dict[str, Any]]:
    """A JSON list of findings, each with at least `name` and a known `severity`."""
    try:
        value = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise click.ClickException(f"{path}: not JSON ({error})") from None
    if not isinstance(value, list):
        raise click.ClickException(f"{path}: expected a JSON list of findings")
    for n, finding in enumerate(value):
        if not isinstance(finding, dict) or not finding.get("name"):
            raise click.ClickException(f"{path}: finding [{n}] has no name")
        if str(finding.get("severity", "")).upper() not in SEVERITY_ORDER:
            raise click.ClickException(
                f"{path}: finding [{n}] severity {finding.get('severity')!r} is not one of "
                f"{', '.join(SEVERITY_ORDER)}"
            )
        finding["severity"] = str(finding["severity"]).upper()
    return value


def resolve(target: str, region: str | None) -> tuple[str, str | None]:
    """(repository, digest or None) for TARGET; a tag is looked up now."""
    if "@" in target:
        repository, _, digest = target.partition("@")
        if not digest.startswith("sha256:"):
            raise click.BadParameter(f"{digest!r} is not a sha256 digest", param_hint="TARGET")
        return repository, digest
    repository, _, tag = target.partition(":")
    if not tag:
        return repository, None
    try:
        image = Registry(region=region).describe_image(repository, tag=tag)
    except (ImageNotFound, RepositoryNotFound) as error:
        raise click.ClickException(f"{target}: {error}") from None
    return repository, image.digest


def _parameter(repository: str, digest: str | None) -> str:
    if digest:
        return image_findings_parameter(repository, digest)
    return SSM_FINDINGS_PREFIX + repository


@findings.command("set")
@click.argument("target")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='JSON list: [{"name": "CVE-…", "severity": "HIGH", "package_name": …, "cvss": 9.8}]',
)
@click.option("--finding", "given", multiple=True, help="NAME:SEVERITY; give it once per finding.")
@click.option("--scan", is_flag=True, help="Scan the image now (start-image-scan).")
@region_option
@json_option
def findings_set(
    target: str,
    path: Path | None,
    given: tuple[str, ...],
    scan: bool,
    region: str | None,
    as_json: bool,
) -> None:
    """The findings TARGET's next scans report (none given: it scans clean)."""
    found = [parse_finding(text) for text in given] + (read_findings(path) if path else [])
    use_local_backend()
    apply_region(region)
    repository, digest = resolve(target, region)
    if scan and digest is None:
        raise click.UsageError("--scan needs one image: REPOSITORY@DIGEST or REPOSITORY:TAG")
    name = _parameter(repository, digest)
    boto3.client("ssm").put_parameter(
        Name=name, Value=json.dumps(found), Type="String", Overwrite=True
    )
    status = None
    if scan and digest is not None:
        status = Registry(region=region).start_image_scan(repository, digest)
    where = f"{repository}@{digest}" if digest else f"every image of {repository}"
    if as_json:
        echo_json({"repository": repository, "digest": digest, "findings": found, "scan": status})
    else:
        click.echo(f"{where}: {len(found)} findings{f', scan {status}' if status else ''}")


@findings.command("clear")
@click.argument("target")
@region_option
def findings_clear(target: str, region: str | None) -> None:
    """Forget the findings set for TARGET (its scans fall back to the repository's, or clean)."""
    use_local_backend()
    apply_region(region)
    repository, digest = resolve(target, region)
    ssm = boto3.client("ssm")
    try:
        ssm.delete_parameter(Name=_parameter(repository, digest))
    except ssm.exceptions.ParameterNotFound:
        click.echo(f"{target}: no findings were set", err=True)
        return
    click.echo(f"{target}: findings cleared")
