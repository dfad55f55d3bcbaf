"""Basic image scanning for the embedded ECR, behaving as ECR's does.

- Scan on push (the repository's `scanOnPush`) and start-image-scan scan an image and then emit
  `ECR Image Scan` on EventBridge, shaped as AWS documents it: `finding-severity-counts` lists
  only the severities that occur.
- describe-image-scan-findings returns the findings, paginated, or ScanNotFoundException for an
  image never scanned.
- ECR cannot scan an index (UnsupportedImageTypeException) and scans an image once a day
  (LimitExceededException).

The findings an image gets are set by a test or a demo: `set_findings(account, region,
repository, digest, findings)` in-process, or, for `make run`, SSM parameters holding a JSON list
(the same shape), which `steward findings set` writes: `/ecr-steward/local/image-findings/
<repository>/<digest hex>` for one image, else `/ecr-steward/local/findings/<repository>` for
every image scanned in that repository. An image with no findings set scans clean.

Departure from ECR, for demos: start-image-scan's once-a-day limit does not hold when the findings
set for the image changed since its last scan (as a new vulnerability database makes ECR's
enhanced scanning rescan).

A finding is `{"name": "CVE-2024-0001", "severity": "CRITICAL", "package_name": "openssl",
"package_version": "3.0.1", "cvss": 9.8}` (only name and severity are required).
"""

from __future__ import annotations

import json
import threading
import weakref
from datetime import UTC, datetime
from typing import Any

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.ecr.models import ecr_backends

from .events import emit_event
from .pagination import paginate

SSM_FINDINGS_PREFIX = "/ecr-steward/local/findings/"
SSM_IMAGE_FINDINGS_PREFIX = "/ecr-steward/local/image-findings/"


def image_findings_parameter(repository: str, digest: str) -> str:
    """The SSM parameter of one image's findings (SSM names allow no `@` or `:`)."""
    return f"{SSM_IMAGE_FINDINGS_PREFIX}{repository}/{digest.partition(':')[2] or digest}"


SEVERITY_ORDER = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")
INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)


class ScanNotFoundException(ServiceException):
    code = "ScanNotFoundException"


class UnsupportedImageTypeException(ServiceException):
    code = "UnsupportedImageTypeException"


class LimitExceededException(ServiceException):
    code = "LimitExceededException"


class ImageNotFoundException(ServiceException):
    code = "ImageNotFoundException"


class _Scan:
    def __init__(self, findings: list[dict[str, Any]], at: datetime) -> None:
        self.findings = findings
        self.completed_at = at


_lock = threading.Lock()
# Per ECR backend, so moto's reset (which drops the backends) forgets them too.
_preset: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], list[dict[str, Any]]]] = (
    weakref.WeakKeyDictionary()
)
_scans: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], _Scan]] = weakref.WeakKeyDictionary()


def _ecr_backend(account: str, region: str) -> Any:

    return ecr_backends[account][region]


def set_findings(
    account: str, region: str, repository: str, digest: str, findings: list[dict[str, Any]]
) -> None:
    """The findings the next scan of this image yields (empty: clean)."""
    with _lock:
        _preset.setdefault(_ecr_backend(account, region), {})[(repository, digest)] = list(findings)


def rescan(account: str, region: str, repository: str, digest: str) -> None:
    """Scan again now, past ECR's once-a-day limit (a new day, or Inspector's rescans)."""
    backend = _ecr_backend(account, region)
    repo = backend._get_repository(repository, account)
    scan_image(backend, repo, digest)


def scan_on_push(backend: Any, repo: Any, image: Any) -> None:
    """put-image's hook: scan a new image where the repository scans on push."""
    config = getattr(repo, "image_scanning_configuration", None) or {}
    if config.get("scanOnPush") and image.image_manifest_media_type not in INDEX_TYPES:
        scan_image(backend, repo, image.get_image_digest())


def scan_image(backend: Any, repo: Any, digest: str) -> None:
    findings = _findings_for(backend, repo, digest)
    with _lock:
        _scans.setdefault(backend, {})[(repo.name, digest)] = _Scan(findings, datetime.now(UTC))
    image = next((i for i in repo.images if i.get_image_digest() == digest), None)
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding["severity"]] = counts.get(finding["severity"], 0) + 1

    emit_event(
        repo.registry_id,
        backend.region_name,
        "aws.ecr",
        "ECR Image Scan",
        {
            "scan-status": "COMPLETE",
            "repository-name": repo.name,
            # Only the severities that occur, as ECR sends them.
            "finding-severity-counts": {s: counts[s] for s in SEVERITY_ORDER if s in counts},
            "image-digest": digest,
            "image-tags": list(image.image_tags) if image is not None else [],
        },
        [repo.arn],
    )


def _findings_for(backend: Any, repo: Any, digest: str) -> list[dict[str, Any]]:
    with _lock:
        preset = _preset.get(backend, {}).get((repo.name, digest))
    if preset is None:
        account, region = repo.registry_id, backend.region_name
        preset = _ssm_findings(account, region, image_findings_parameter(repo.name, digest))
    if preset is None:
        preset = _ssm_findings(account, region, SSM_FINDINGS_PREFIX + repo.name)
    return [_ecr_finding(f) for f in preset or []]


def _ssm_findings(account: str, region: str, name: str) -> list[dict[str, Any]] | None:
    """The findings an SSM parameter holds; None when there is no such parameter."""

    # Imported here, not at the top: moto's SSM models import its EC2 models, which build a
    # boto3 session at import time, and a stray AWS_PROFILE would then break every command.
    from moto.ssm.models import ssm_backends  # noqa: PLC0415

    try:
        parameter = ssm_backends[account][region].get_parameter(name)
    except Exception:  # no such parameter
        return None
    if parameter is None:
        return None
    try:
        value = json.loads(parameter.value)
    except (TypeError, ValueError):
        return []
    return [f for f in value if isinstance(f, dict)] if isinstance(value, list) else []


def _ecr_finding(finding: dict[str, Any]) -> dict[str, Any]:
    """A finding as basic scanning's describe-image-scan-findings reports it."""
    if "attributes" in finding:
        return finding
    name = str(finding["name"])
    attributes = [
        {"key": key, "value": str(finding[field])}
        for key, field in (
            ("package_name", "package_name"),
            ("package_version", "package_version"),
            ("CVSS3_SCORE", "cvss"),
        )
        if finding.get(field) is not None
    ]
    return {
        "name": name,
        "description": finding.get("description", ""),
        "uri": f"https://nvd.nist.gov/vuln/detail/{name}",
        "severity": str(finding.get("severity", "UNDEFINED")),
        "attributes": attributes,
    }


# -- the API -----------------------------------------------------------------------------------


def _image(backend: Any, repo: Any, image_id: dict[str, str]) -> Any:
    digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
    for image in repo.images:
        if (digest and image.get_image_digest() == digest) or (tag and tag in image.image_tags):
            return image
    raise ImageNotFoundException(
        f"The image with imageId {json.dumps(image_id)} does not exist within the repository "
        f"with name '{repo.name}' in the registry with id '{repo.registry_id}'"
    )


def _start_image_scan(self: Any) -> ActionResult:
    backend = self.ecr_backend
    image_id = self._get_param("imageId") or {}
    with backend._lock:
        repo = backend._get_repository(
            self._get_param("repositoryName"), self._get_param("registryId")
        )
        image = _image(backend, repo, image_id)
        digest = image.get_image_digest()
        if image.image_manifest_media_type in INDEX_TYPES:
            raise UnsupportedImageTypeException("The image type is not supported for scanning.")
        with _lock:
            previous = _scans.get(backend, {}).get((repo.name, digest))
        if (
            previous is not None
            and previous.completed_at.date() == datetime.now(UTC).date()
            and previous.findings == _findings_for(backend, repo, digest)
        ):
            raise LimitExceededException(
                "The scan quota per image has been exceeded. Wait and try again."
            )
    scan_image(backend, repo, digest)
    return ActionResult(
        {
            "registryId": repo.registry_id,
            "repositoryName": repo.name,
            "imageId": {
                "imageDigest": digest,
                **({"imageTag": image_id["imageTag"]} if image_id.get("imageTag") else {}),
            },
            "imageScanStatus": {"status": "IN_PROGRESS"},
        }
    )


def _describe_image_scan_findings(self: Any) -> ActionResult:
    backend = self.ecr_backend
    image_id = self._get_param("imageId") or {}
    repo = backend._get_repository(self._get_param("repositoryName"), self._get_param("registryId"))
    image = _image(backend, repo, image_id)
    digest = image.get_image_digest()
    with _lock:
        scan = _scans.get(backend, {}).get((repo.name, digest))
    if scan is None:
        raise ScanNotFoundException(
            f"Image scan does not exist for the image with '{{imageDigest:'{digest}', "
            f"imageTag:'null'}}' in the repository with name '{repo.name}' in the registry with "
            f"id '{repo.registry_id}'"
        )

    page, token = paginate(
        scan.findings, self._get_param("maxResults"), self._get_param("nextToken")
    )
    counts: dict[str, int] = {}
    for finding in scan.findings:
        counts[finding["severity"]] = counts.get(finding["severity"], 0) + 1
    body: dict[str, Any] = {
        "registryId": repo.registry_id,
        "repositoryName": repo.name,
        "imageId": {"imageDigest": digest},
        "imageScanStatus": {
            "status": "COMPLETE",
            "description": "The scan was completed successfully.",
        },
        "imageScanFindings": {
            "imageScanCompletedAt": scan.completed_at,
            "vulnerabilitySourceUpdatedAt": scan.completed_at,
            "findingSeverityCounts": counts,
            "findings": page,
        },
    }
    if token:
        body["nextToken"] = token
    return ActionResult(body)


RESPONSE_HANDLERS = {
    "start_image_scan": _start_image_scan,
    "describe_image_scan_findings": _describe_image_scan_findings,
}
