"""Repositories and their settings: create, describe, policies, scanning, tag mutability, resource
tags, and the registry's own replication configuration."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from chalicelib.ecr import readcache
from chalicelib.ecr.core import (
    PAGE_SIZE,
    GatewayCore,
    _batches,
    _exclusion_filters,
)
from chalicelib.ecr.errors import (
    RegistryError,
    RepositoryAlreadyExists,
    RepositoryNotFound,
    _translate,
)
from chalicelib.ecr.models import (
    RepositoryInfo,
    TagMutability,
)


class RepositoryCalls(GatewayCore):
    @staticmethod
    def _repository(raw: dict[str, Any]) -> RepositoryInfo:
        return RepositoryInfo(
            name=raw["repositoryName"],
            arn=raw["repositoryArn"],
            registry_id=raw["registryId"],
            uri=raw["repositoryUri"],
            tag_mutability=raw.get("imageTagMutability", "MUTABLE"),
            mutability_exclusions=[
                f["filter"] for f in raw.get("imageTagMutabilityExclusionFilters", [])
            ],
            scan_on_push=raw.get("imageScanningConfiguration", {}).get("scanOnPush", False),
            created_at=raw.get("createdAt"),
            encryption_type=raw.get("encryptionConfiguration", {}).get("encryptionType", "AES256"),
            kms_key=raw.get("encryptionConfiguration", {}).get("kmsKey"),
        )

    def describe_repository(self, name: str) -> RepositoryInfo:
        cache = readcache.active()
        if cache is not None and (id(self), name) in cache.repositories:
            return cache.repositories[(id(self), name)]
        response = self._call("describe_repositories", repositoryNames=[name])
        info = self._repository(response["repositories"][0])
        if cache is not None:
            cache.repositories[(id(self), name)] = info
        return info

    def iter_repositories(self) -> Iterator[RepositoryInfo]:
        token: str | None = None
        while True:
            repositories, token = self.repositories_page(token)
            yield from repositories
            if not token:
                return

    def repositories_page(
        self, token: str | None = None, page_size: int = PAGE_SIZE
    ) -> tuple[list[RepositoryInfo], str | None]:
        """One page of describe-repositories and the token of the next (None: the last page).
        The sweep walks the registry a page per invocation with it."""
        page = self._call(
            "describe_repositories",
            maxResults=page_size,
            **({"nextToken": token} if token else {}),
        )
        return [self._repository(r) for r in page.get("repositories", [])], page.get("nextToken")

    def create_repository(
        self,
        name: str,
        *,
        tag_mutability: TagMutability = "MUTABLE",
        scan_on_push: bool = False,
        tags: dict[str, str] | None = None,
        mutability_exclusions: list[str] | None = None,
        encryption: dict[str, str] | None = None,
    ) -> RepositoryInfo:
        extra: dict[str, Any] = {}
        if mutability_exclusions:
            extra["imageTagMutabilityExclusionFilters"] = _exclusion_filters(mutability_exclusions)
        if encryption:
            extra["encryptionConfiguration"] = encryption
        response = self._call(
            "create_repository",
            repositoryName=name,
            imageTagMutability=tag_mutability,
            imageScanningConfiguration={"scanOnPush": scan_on_push},
            tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
            **extra,
        )
        return self._repository(response["repository"])

    def ensure_repository(self, name: str) -> RepositoryInfo:
        try:
            return self.describe_repository(name)
        except RepositoryNotFound:
            try:
                return self.create_repository(name)
            except RepositoryAlreadyExists:  # created concurrently
                return self.describe_repository(name)

    def _own_registry_call(self, operation: str, **params: Any) -> dict[str, Any]:
        # These act on the caller's own registry and take no registryId.
        self._pace(operation)
        try:
            response: dict[str, Any] = getattr(self.client, operation)(**params)
        except Exception as error:
            raise _translate(error, operation) from error
        return response

    def get_replication_rules(self) -> list[dict[str, Any]]:
        """The registry's replication rules, as describe-registry reports them."""
        response = self._own_registry_call("describe_registry")
        rules: list[dict[str, Any]] = response.get("replicationConfiguration", {}).get("rules", [])
        return rules

    def put_replication_rules(self, rules: list[dict[str, Any]]) -> None:
        """put-replication-configuration: replaces the registry's whole rule set."""
        self._own_registry_call(
            "put_replication_configuration", replicationConfiguration={"rules": rules}
        )

    # governance: repository settings

    def get_repository_policy(self, repository: str) -> str | None:
        """The repository policy text, or None when the repository has none."""
        try:
            response = self._call("get_repository_policy", repositoryName=repository)
        except RegistryError as error:
            if error.code == "RepositoryPolicyNotFoundException":
                return None
            raise
        return str(response["policyText"])

    def set_repository_policy(self, repository: str, policy_text: str) -> None:
        self._call("set_repository_policy", repositoryName=repository, policyText=policy_text)

    def delete_repository_policy(self, repository: str) -> bool:
        """False when there was no policy to delete (already in the wanted state)."""
        try:
            self._call("delete_repository_policy", repositoryName=repository)
        except RegistryError as error:
            if error.code == "RepositoryPolicyNotFoundException":
                return False
            raise
        return True

    def get_lifecycle_policy(self, repository: str) -> str | None:
        """The lifecycle policy text, or None when the repository has none."""
        try:
            response = self._call("get_lifecycle_policy", repositoryName=repository)
        except RegistryError as error:
            if error.code == "LifecyclePolicyNotFoundException":
                return None
            raise
        return str(response["lifecyclePolicyText"])

    def put_lifecycle_policy(self, repository: str, policy_text: str) -> None:
        self._call(
            "put_lifecycle_policy", repositoryName=repository, lifecyclePolicyText=policy_text
        )

    def delete_lifecycle_policy(self, repository: str) -> bool:
        """False when there was no policy to delete (already in the wanted state)."""
        try:
            self._call("delete_lifecycle_policy", repositoryName=repository)
        except RegistryError as error:
            if error.code == "LifecyclePolicyNotFoundException":
                return False
            raise
        return True

    def list_repository_tags(self, repository_arn: str) -> dict[str, str]:
        """Resource tags (not image tags) of a repository."""
        response = self._call("list_tags_for_resource", resourceArn=repository_arn)
        return {t["Key"]: t["Value"] for t in response.get("tags", [])}

    def tag_repository(self, repository_arn: str, tags: dict[str, str]) -> None:
        self._call(
            "tag_resource",
            resourceArn=repository_arn,
            tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )

    def untag_repository(self, repository_arn: str, keys: Iterable[str]) -> None:
        self._call("untag_resource", resourceArn=repository_arn, tagKeys=list(keys))

    def put_scan_on_push(self, repository: str, scan_on_push: bool) -> None:
        self._call(
            "put_image_scanning_configuration",
            repositoryName=repository,
            imageScanningConfiguration={"scanOnPush": scan_on_push},
        )

    def get_scanning_configurations(self, repositories: Iterable[str]) -> dict[str, dict[str, Any]]:
        """batch-get-repository-scanning-configuration, 25 names a call (ECR's limit)."""
        found: dict[str, dict[str, Any]] = {}
        for batch in _batches(list(repositories), 25):
            response = self._call(
                "batch_get_repository_scanning_configuration", repositoryNames=batch
            )
            for config in response.get("scanningConfigurations", []):
                found[config["repositoryName"]] = config
        return found

    def put_tag_mutability(
        self, repository: str, mode: TagMutability, exclusions: list[str] | None = None
    ) -> None:
        """put-image-tag-mutability. ECR wants filters with the *_WITH_EXCLUSION modes only."""
        extra: dict[str, Any] = {}
        if exclusions:
            extra["imageTagMutabilityExclusionFilters"] = _exclusion_filters(exclusions)
        self._call(
            "put_image_tag_mutability",
            repositoryName=repository,
            imageTagMutability=mode,
            **extra,
        )

    def delete_repository(self, repository: str, *, force: bool = False) -> bool:
        """False when the repository was already gone. A repository with images and no `force`
        fails with code RepositoryNotEmptyException."""
        try:
            self._call("delete_repository", repositoryName=repository, force=force)
        except RepositoryNotFound:
            return False
        return True

    def has_images(self, repository: str) -> bool:
        """Whether the repository holds any image, archived ones included (one small call)."""
        response = self._call(
            "list_images",
            repositoryName=repository,
            maxResults=1,
            filter={"tagStatus": "ANY", "imageStatus": "ANY"},
        )
        return bool(response.get("imageIds"))
