"""Lifecycle-policy calls for the embedded ECR, answered with chalicelib.lifecycle's evaluator.

- start-lifecycle-policy-preview / get-lifecycle-policy-preview: moto 5.2.5 has neither (its
  server answers HTTP 500). The preview is evaluated when it starts, over the repository's images
  at that moment: start answers IN_PROGRESS as ECR does, and every get answers COMPLETE, so the
  `lifecycle_policy_preview_complete` waiter succeeds on its first poll. Pages hold 1..100
  results, `imageIds` and `filter.tagStatus` narrow them, and the summary counts every result.
- put-lifecycle-policy: moto's validator predates the archive storage class and refuses
  `storageClass`, `transition` and `targetStorageClass`; this one applies ECR's current rules.

`RESPONSE_HANDLERS` is merged into steward_tools/local/ecr_responses.py's handler table.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.ecr.exceptions import InvalidParameterException, LifecyclePolicyNotFoundException
from moto.ecr.models import Repository
from moto.ecr.responses import ECRResponse

from chalicelib.ecr.lifecycle_policy import LifecyclePolicy, LifecyclePolicyError, parse_policy
from chalicelib.lifecycle.evaluate import LifecycleImage, evaluate, preview_result

from .pagination import paginate

MAX_PREVIEW_PAGE = 100
# Where a repository's last preview is kept (on moto's Repository, so a reset forgets it).
_PREVIEW_ATTRIBUTE = "steward_lifecycle_preview"


class LifecyclePolicyPreviewNotFoundException(ServiceException):
    code = "LifecyclePolicyPreviewNotFoundException"


def _policy(text: str) -> LifecyclePolicy:
    try:
        return parse_policy(text)
    except LifecyclePolicyError as error:
        raise InvalidParameterException(error.ecr_message()) from None


def _pushed_at(image: Any) -> datetime:
    pushed = image.image_pushed_at
    # moto's own Image keeps whole epoch seconds; the embedded one keeps a datetime.
    return pushed if isinstance(pushed, datetime) else datetime.fromtimestamp(pushed, UTC)


def _lifecycle_image(image: Any) -> LifecycleImage:
    return LifecycleImage(
        digest=image.get_image_digest(),
        tags=tuple(image.image_tags or ()),
        pushed_at=_pushed_at(image),
        status=getattr(image, "image_status", None) or "ACTIVE",
        last_pulled_at=getattr(image, "last_recorded_pull_time", None),
        last_archived_at=getattr(image, "last_archived_at", None),
        last_activated_at=getattr(image, "last_activated_at", None),
    )


def _repository(response: ECRResponse) -> Repository:
    return response.ecr_backend._get_repository(
        response._get_param("repositoryName"), response._get_param("registryId")
    )


def _lock(response: ECRResponse) -> Any:
    return getattr(response.ecr_backend, "_lock", None) or contextlib.nullcontext()


def _start_lifecycle_policy_preview(self: ECRResponse) -> ActionResult:
    given = self._get_param("lifecyclePolicyText")
    with _lock(self):
        repo = _repository(self)
        text = given if given is not None else repo.lifecycle_policy
        if not text:
            raise LifecyclePolicyNotFoundException(repo.name, repo.registry_id)
        policy = _policy(text)
        images = list(repo.images)
        children = {i.get_image_digest(): list(getattr(i, "child_digests", ())) for i in images}
        plan = evaluate(
            policy,
            [_lifecycle_image(i) for i in images],
            datetime.now(UTC),
            index_children={k: v for k, v in children.items() if v},
        )
        results = []
        for decision in sorted(
            plan.acted, key=lambda d: (d.rule_priority or 0, d.pushed_at, d.digest)
        ):
            result = preview_result(decision)
            result["imagePushedAt"] = decision.pushed_at  # a timestamp on the wire
            results.append(result)
        setattr(
            repo,
            _PREVIEW_ATTRIBUTE,
            {"policy_text": text, "results": results, "summary": plan.summary()},
        )
        return ActionResult(
            {
                "registryId": repo.registry_id,
                "repositoryName": repo.name,
                "lifecyclePolicyText": text,
                "status": "IN_PROGRESS",
            }
        )


def _selected(result: dict[str, Any], image_ids: list[dict[str, str]] | None) -> bool:
    if not image_ids:
        return True
    return any(
        result["imageDigest"] == i.get("imageDigest", result["imageDigest"])
        and ("imageTag" not in i or i["imageTag"] in result["imageTags"])
        for i in image_ids
    )


def _tag_status_allows(result: dict[str, Any], tag_status: str) -> bool:
    if tag_status == "TAGGED":
        return bool(result["imageTags"])
    if tag_status == "UNTAGGED":
        return not result["imageTags"]
    return True


def _get_lifecycle_policy_preview(self: ECRResponse) -> ActionResult:

    max_results = self._get_param("maxResults")
    if max_results is not None and not 1 <= int(max_results) <= MAX_PREVIEW_PAGE:
        raise InvalidParameterException(
            "Invalid parameter at 'maxResults' failed to satisfy constraint: "
            f"'Member must have value less than or equal to {MAX_PREVIEW_PAGE}'"
        )
    with _lock(self):
        repo = _repository(self)
        preview = getattr(repo, _PREVIEW_ATTRIBUTE, None)
        if preview is None:
            raise LifecyclePolicyPreviewNotFoundException(
                f"There is no dry run for the repository with name '{repo.name}' in the "
                f"registry with id '{repo.registry_id}'"
            )
        tag_status = (self._get_param("filter") or {}).get("tagStatus", "ANY")
        image_ids = self._get_param("imageIds")
        wanted = [
            r
            for r in preview["results"]
            if _selected(r, image_ids) and _tag_status_allows(r, tag_status)
        ]
        page, token = paginate(
            wanted, max_results or MAX_PREVIEW_PAGE, self._get_param("nextToken")
        )
        return ActionResult(
            {
                "registryId": repo.registry_id,
                "repositoryName": repo.name,
                "lifecyclePolicyText": preview["policy_text"],
                "status": "COMPLETE",
                "nextToken": token,
                "previewResults": page,
                "summary": preview["summary"],
            }
        )


def _put_lifecycle_policy(self: ECRResponse) -> ActionResult:
    text = self._get_param("lifecyclePolicyText")
    _policy(text)
    with _lock(self):
        repo = _repository(self)
        repo.lifecycle_policy = text
        return ActionResult(
            {
                "registryId": repo.registry_id,
                "repositoryName": repo.name,
                "lifecyclePolicyText": text,
            }
        )


RESPONSE_HANDLERS = {
    "start_lifecycle_policy_preview": _start_lifecycle_policy_preview,
    "get_lifecycle_policy_preview": _get_lifecycle_policy_preview,
    "put_lifecycle_policy": _put_lifecycle_policy,
}
