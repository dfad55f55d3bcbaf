"""Repository-settings calls where moto 5.2.5 departs from ECR (used by governance).

- put-image-tag-mutability: moto accepts exclusion filters with a plain MUTABLE/IMMUTABLE mode
  (silently switching to the *_WITH_EXCLUSION mode) and a *_WITH_EXCLUSION mode without filters;
  ECR refuses both, as moto's own create-repository does. Its response also leaves out
  `imageTagMutabilityExclusionFilters`, which ECR echoes.
- batch-get-repository-scanning-configuration: moto always answers `scanOnPush: false`, whatever
  put-image-scanning-configuration or create-repository set. ECR reports the repository's
  setting, with `scanFrequency` SCAN_ON_PUSH when it is on (basic scanning).

`RESPONSE_HANDLERS` is merged into steward_tools/local/ecr_responses.py's handler table.
"""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult
from moto.ecr.exceptions import RepositoryNotFoundException
from moto.ecr.models import ECRBackend
from moto.ecr.responses import ECRResponse


def _put_image_tag_mutability(self: ECRResponse) -> ActionResult:
    mode = self._get_param("imageTagMutability")
    filters = self._get_param("imageTagMutabilityExclusionFilters")
    ECRBackend.validate_image_tag_mutability_params_compatibility(mode, filters)
    result = self.ecr_backend.put_image_tag_mutability(
        registry_id=self._get_param("registryId"),
        repository_name=self._get_param("repositoryName"),
        image_tag_mutability=mode,
        image_tag_mutability_exclusion_filters=filters,
    )
    if filters:
        result["imageTagMutabilityExclusionFilters"] = filters
    return ActionResult(result)


def _batch_get_repository_scanning_configuration(self: ECRResponse) -> ActionResult:
    configs: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    for name in self._get_param("repositoryNames") or []:
        try:
            repo = self.ecr_backend._get_repository(name, self._get_param("registryId"))
        except RepositoryNotFoundException:
            failures.append(
                {
                    "repositoryName": name,
                    "failureCode": "REPOSITORY_NOT_FOUND",
                    "failureReason": "REPOSITORY_NOT_FOUND",
                }
            )
            continue
        scanning: Any = repo.image_scanning_configuration or {}
        scan_on_push = bool(scanning.get("scanOnPush"))
        config = dict(repo.scanning_config)
        config["scanOnPush"] = scan_on_push
        if scan_on_push and config.get("scanFrequency") == "MANUAL":
            config["scanFrequency"] = "SCAN_ON_PUSH"
        configs.append(config)
    return ActionResult({"scanningConfigurations": configs, "failures": failures})


RESPONSE_HANDLERS = {
    "put_image_tag_mutability": _put_image_tag_mutability,
    "batch_get_repository_scanning_configuration": _batch_get_repository_scanning_configuration,
}
