"""Image scans (start, findings) and ECR's own lifecycle-policy preview."""

from __future__ import annotations

import time
from typing import Any

from chalicelib.ecr.core import (
    PAGE_SIZE,
    GatewayCore,
)
from chalicelib.ecr.errors import (
    RegistryError,
)
from chalicelib.ecr.models import (
    LIFECYCLE_PREVIEW_PAGE,
    LifecyclePreview,
)


class ScanCalls(GatewayCore):
    def start_lifecycle_preview(self, repository: str, policy_text: str | None = None) -> str:
        """start-lifecycle-policy-preview; without `policy_text`, of the repository's policy.

        Returns the status. Codes: LifecyclePolicyNotFoundException (no policy at all),
        LifecyclePolicyPreviewInProgressException (one is already running).
        """
        extra = {"lifecyclePolicyText": policy_text} if policy_text is not None else {}
        response = self._call("start_lifecycle_policy_preview", repositoryName=repository, **extra)
        return str(response.get("status", "IN_PROGRESS"))

    def get_lifecycle_preview(self, repository: str) -> LifecyclePreview:
        """get-lifecycle-policy-preview, every page (100 results a call, ECR's maximum)."""
        preview: LifecyclePreview | None = None
        token: str | None = None
        while True:
            page = self._call(
                "get_lifecycle_policy_preview",
                repositoryName=repository,
                maxResults=LIFECYCLE_PREVIEW_PAGE,
                **({"nextToken": token} if token else {}),
            )
            if preview is None:
                preview = LifecyclePreview(
                    repository=repository,
                    status=page.get("status", "IN_PROGRESS"),
                    policy_text=page.get("lifecyclePolicyText"),
                    summary=page.get("summary", {}),
                )
            preview.results.extend(page.get("previewResults", []))
            token = page.get("nextToken")
            if not token or preview.status != "COMPLETE":
                return preview

    def lifecycle_preview(
        self,
        repository: str,
        policy_text: str | None = None,
        *,
        poll_seconds: float = 5.0,
        max_polls: int = 20,
    ) -> LifecyclePreview:
        """Start a preview and poll until it is COMPLETE (the waiter's 5 s, 20 times), or FAILED."""

        self.start_lifecycle_preview(repository, policy_text)
        for _ in range(max_polls):
            preview = self.get_lifecycle_preview(repository)
            if preview.status != "IN_PROGRESS":
                return preview
            time.sleep(poll_seconds)
        return preview

    # image scanning, for the gate

    def start_image_scan(self, repository: str, digest: str) -> str:
        """start-image-scan; returns the scan status, or why ECR will not scan (not an error:
        once a day per image, and not an index or an archived image)."""
        try:
            response = self._call_once_per_quota(
                "start_image_scan", repositoryName=repository, imageId={"imageDigest": digest}
            )
        except RegistryError as error:
            if error.code in (
                "LimitExceededException",
                "UnsupportedImageTypeException",
                "ImageArchivedException",
            ):
                return error.code
            raise
        return str(response.get("imageScanStatus", {}).get("status", "IN_PROGRESS"))

    def scan_findings(self, repository: str, digest: str) -> dict[str, Any]:
        """describe-image-scan-findings, every page: `findings` (basic), `enhancedFindings`
        (enhanced), `status`."""
        out: dict[str, Any] = {"findings": [], "enhancedFindings": [], "status": None}
        for page in self._pages(
            "describe_image_scan_findings",
            repositoryName=repository,
            imageId={"imageDigest": digest},
            maxResults=PAGE_SIZE,
        ):
            found = page.get("imageScanFindings", {})
            out["findings"].extend(found.get("findings", []))
            out["enhancedFindings"].extend(found.get("enhancedFindings", []))
            out["status"] = page.get("imageScanStatus", {}).get("status")
        return out
