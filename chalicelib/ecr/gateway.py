"""The ECR gateway: the only code in ecr-steward that calls Amazon ECR.

It owns pagination, ECR's batch limits (100 image ids or layer digests a call, 1,000 results a
page), retries with adaptive backoff on throttling, pacing (a limiter per registry, see
`chalicelib.kernel.ratelimit`), and the mapping of ECR error codes to the project's own
exceptions (`chalicelib.ecr.errors`). Manifest bytes pass through untouched and
`imageManifestMediaType` is always sent, so a retag never changes a digest.
"""

from __future__ import annotations

import base64
import io
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, Literal

import boto3
from botocore.config import Config
from pydantic import SecretStr

from chalicelib.ecr.errors import (
    ImageNotFound,
    RegistryError,
    RepositoryAlreadyExists,
    RepositoryNotFound,
    TagImmutable,
    Throttled,
    _translate,
)
from chalicelib.ecr.models import (
    LIFECYCLE_PREVIEW_PAGE,
    AuthorizationToken,
    DeleteOutcome,
    ImageDetail,
    LifecyclePreview,
    PutOutcome,
    RepositoryInfo,
    TagMutability,
)
from chalicelib.kernel import aws
from chalicelib.oci.manifests import ACCEPTED_MEDIA_TYPES, Manifest, digest_of, media_type_of

BATCH_IMAGE_IDS = 100


BATCH_LAYER_DIGESTS = 100


PAGE_SIZE = 1000


MIN_PART_SIZE = 5 * 1024 * 1024


DEFAULT_PART_SIZE = 10 * 1024 * 1024


ARN_ADDRESSED_OPERATIONS = frozenset({"list_tags_for_resource", "tag_resource", "untag_resource"})


class Registry:
    """ECR in one account and region. Clients are built lazily so importing costs nothing."""

    def __init__(
        self,
        *,
        region: str | None = None,
        registry_id: str | None = None,
        client: Any = None,
        session: Any = None,
        max_attempts: int = 10,
        limiter: Callable[[str], None] | None = None,
    ) -> None:
        # Replication: paces each call by operation (chalicelib.ratelimit) before it is sent.
        self._limiter = limiter
        self._region = region
        self._registry_id = registry_id
        self._client = client
        self._client_injected = client is not None
        self._single_attempt: Any = None
        self._session = session
        self._max_attempts = max_attempts
        self._lock = threading.Lock()
        # ECR calls made, by operation: benchmarks and tests read it to count cost.
        self.calls: Counter[str] = Counter()

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build_client("adaptive", self._max_attempts + 1)
        return self._client

    @property
    def single_attempt_client(self) -> Any:
        """A client that never retries, for calls where ECR's LimitExceededException is a quota
        answer (start-image-scan: once per image per day), which botocore's retry modes would
        otherwise retry as throttling for a minute. Throttling is retried by the caller."""
        if self._single_attempt is None:
            with self._lock:
                if self._single_attempt is None:
                    self._single_attempt = (
                        self._client if self._client_injected else self._build_client("standard", 1)
                    )
        return self._single_attempt

    def _build_client(self, mode: str, total_attempts: int) -> Any:
        session = self._session or aws.session()
        return session.client(
            "ecr",
            region_name=self._region,
            config=Config(
                # botocore's `max_attempts` counts retries; `total_max_attempts` counts requests.
                retries={"mode": mode, "total_max_attempts": total_attempts},
                max_pool_connections=32,
            ),
        )

    @property
    def region(self) -> str:
        return str(self.client.meta.region_name)

    @property
    def registry_id(self) -> str | None:
        """The account whose registry this is, when named (else the caller's own)."""
        return self._registry_id

    @property
    def endpoint_url(self) -> str:
        """Where the control API is (ECR's, or the embedded backend's)."""
        return str(self.client.meta.endpoint_url)

    def _ids(self) -> dict[str, str]:
        return {"registryId": self._registry_id} if self._registry_id else {}

    def _call(self, operation: str, *, _via: Any = None, **params: Any) -> dict[str, Any]:
        self.calls[operation] += 1
        if self._limiter is not None:
            self._limiter(operation)
        try:
            # Tag operations name the repository by ARN and take no registryId.
            ids = {} if operation in ARN_ADDRESSED_OPERATIONS else self._ids()
            client = _via if _via is not None else self.client
            response: dict[str, Any] = getattr(client, operation)(**ids, **params)
        except Exception as error:  # botocore raises several unrelated types
            raise _translate(error, operation) from error
        return response

    def _call_once_per_quota(
        self, operation: str, attempts: int = 5, **params: Any
    ) -> dict[str, Any]:
        """`_call` where LimitExceededException means "quota reached", not "slow down": only
        real throttling is retried, with exponential backoff."""

        for attempt in range(attempts):
            try:
                return self._call(operation, _via=self.single_attempt_client, **params)
            except Throttled:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    # repositories -----------------------------------------------------------------------

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
        response = self._call("describe_repositories", repositoryNames=[name])
        return self._repository(response["repositories"][0])

    def iter_repositories(self) -> Iterator[RepositoryInfo]:
        token: str | None = None
        while True:
            page = self._call(
                "describe_repositories",
                maxResults=PAGE_SIZE,
                **({"nextToken": token} if token else {}),
            )
            yield from (self._repository(r) for r in page.get("repositories", []))
            token = page.get("nextToken")
            if not token:
                return

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

    # images ------------------------------------------------------------------------------

    @staticmethod
    def _image(repository: str, raw: dict[str, Any]) -> ImageDetail:
        return ImageDetail(
            repository=repository,
            digest=raw["imageDigest"],
            tags=raw.get("imageTags", []),
            pushed_at=raw["imagePushedAt"],
            size=raw.get("imageSizeInBytes"),
            media_type=raw.get("imageManifestMediaType"),
            artifact_media_type=raw.get("artifactMediaType"),
            subject_digest=raw.get("subjectManifestDigest"),
            status=raw.get("imageStatus", "ACTIVE"),
            last_pulled_at=raw.get("lastRecordedPullTime"),
        )

    def iter_images(
        self, repository: str, *, tag_status: Literal["TAGGED", "UNTAGGED", "ANY"] = "ANY"
    ) -> Iterator[ImageDetail]:
        """Every image in the repository, a page of 1,000 a call."""
        token: str | None = None
        while True:
            page = self._call(
                "describe_images",
                repositoryName=repository,
                maxResults=PAGE_SIZE,
                filter={"tagStatus": tag_status},
                **({"nextToken": token} if token else {}),
            )
            yield from (self._image(repository, d) for d in page.get("imageDetails", []))
            token = page.get("nextToken")
            if not token:
                return

    def describe_image(
        self, repository: str, *, digest: str | None = None, tag: str | None = None
    ) -> ImageDetail:
        image_id = {"imageDigest": digest} if digest else {"imageTag": tag or ""}
        response = self._call("describe_images", repositoryName=repository, imageIds=[image_id])
        return self._image(repository, response["imageDetails"][0])

    def get_manifests(
        self, repository: str, image_ids: Iterable[dict[str, str]]
    ) -> tuple[list[Manifest], list[dict[str, Any]]]:
        """Manifests by image id (digest or tag), 100 a call; returns (found, failures)."""
        found: list[Manifest] = []
        failures: list[dict[str, Any]] = []
        for batch in _batches(list(image_ids), BATCH_IMAGE_IDS):
            response = self._call(
                "batch_get_image",
                repositoryName=repository,
                imageIds=batch,
                acceptedMediaTypes=ACCEPTED_MEDIA_TYPES,
            )
            seen: set[str] = set()
            for image in response.get("images", []):
                digest = image["imageId"]["imageDigest"]
                if digest in seen:  # the same digest asked for by two tags
                    continue
                seen.add(digest)
                body = image["imageManifest"]
                found.append(
                    Manifest(
                        digest=digest,
                        media_type=image.get("imageManifestMediaType") or media_type_of(body) or "",
                        body=body,
                    )
                )
            failures.extend(response.get("failures", []))
        return found, failures

    def get_manifest(
        self, repository: str, *, digest: str | None = None, tag: str | None = None
    ) -> Manifest:
        image_id = {"imageDigest": digest} if digest else {"imageTag": tag or ""}
        found, failures = self.get_manifests(repository, [image_id])
        if not found:
            reason = failures[0].get("failureReason", "") if failures else ""
            raise ImageNotFound(
                "ImageNotFoundException", reason or str(image_id), "batch_get_image"
            )
        return found[0]

    def put_manifest(
        self, repository: str, manifest: Manifest, tag: str | None = None
    ) -> PutOutcome:
        """put-image with the exact bytes. "Already exists" and "tag already here" are success."""
        params: dict[str, Any] = {
            "repositoryName": repository,
            "imageManifest": manifest.body,
            "imageManifestMediaType": manifest.media_type,
            "imageDigest": manifest.digest,
        }
        if tag:
            params["imageTag"] = tag
        try:
            response = self._call("put_image", **params)
        except TagImmutable:
            current = self._digest_of_tag(repository, tag)
            if current == manifest.digest:
                return PutOutcome(status="unchanged", digest=manifest.digest, tag=tag)
            raise
        except RegistryError as error:
            if error.code == "ImageAlreadyExistsException":
                return PutOutcome(status="unchanged", digest=manifest.digest, tag=tag)
            raise
        return PutOutcome(
            status="created", digest=response["image"]["imageId"]["imageDigest"], tag=tag
        )

    def _digest_of_tag(self, repository: str, tag: str | None) -> str | None:
        if not tag:
            return None
        try:
            return self.describe_image(repository, tag=tag).digest
        except ImageNotFound:
            return None

    def delete_images(self, repository: str, image_ids: Iterable[dict[str, str]]) -> DeleteOutcome:
        """batch-delete-image, 100 a call; per-image failures are returned, never dropped."""
        outcome = DeleteOutcome()
        for batch in _batches(list(image_ids), BATCH_IMAGE_IDS):
            response = self._call("batch_delete_image", repositoryName=repository, imageIds=batch)
            outcome.deleted.extend(response.get("imageIds", []))
            outcome.failures.extend(response.get("failures", []))
        return outcome

    # layers -----------------------------------------------------------------------------

    def missing_layers(self, repository: str, digests: Iterable[str]) -> list[str]:
        """Which of these blobs the repository does not have (100 digests a call)."""
        wanted = list(dict.fromkeys(digests))
        available: set[str] = set()
        for batch in _batches(wanted, BATCH_LAYER_DIGESTS):
            response = self._call(
                "batch_check_layer_availability", repositoryName=repository, layerDigests=batch
            )
            available.update(
                layer["layerDigest"]
                for layer in response.get("layers", [])
                if layer.get("layerAvailability") == "AVAILABLE"
            )
        return [d for d in wanted if d not in available]

    def download_url(self, repository: str, digest: str) -> str:
        response = self._call(
            "get_download_url_for_layer", repositoryName=repository, layerDigest=digest
        )
        return str(response["downloadUrl"])

    def open_blob(self, repository: str, digest: str, *, timeout: float = 60.0) -> IO[bytes]:
        """A streaming reader of one blob, from the URL ECR hands out (S3 on AWS)."""
        url = self.download_url(repository, digest)
        return urllib.request.urlopen(url, timeout=timeout)

    def upload_blob(self, repository: str, reader: IO[bytes], digest: str) -> bool:
        """Upload one blob in consecutive parts of the size ECR asks for.

        Memory holds one part at a time, never the whole blob. Returns False when ECR already
        had the blob (LayerAlreadyExistsException counts as success).
        """
        started = self._call("initiate_layer_upload", repositoryName=repository)
        upload_id = started["uploadId"]
        part_size = max(int(started.get("partSize") or DEFAULT_PART_SIZE), MIN_PART_SIZE)
        first = 0
        while True:
            part = _read_exactly(reader, part_size)
            if not part:
                if first == 0:
                    raise RegistryError(
                        "EmptyUploadException", f"{digest} is empty: ECR cannot store it"
                    )
                break
            self._upload_part(repository, upload_id, first, part)
            first += len(part)
            if len(part) < part_size:
                break
        try:
            self._call(
                "complete_layer_upload",
                repositoryName=repository,
                uploadId=upload_id,
                layerDigests=[digest],
            )
        except RegistryError as error:
            if error.code == "LayerAlreadyExistsException":
                return False
            raise
        return True

    def _upload_part(self, repository: str, upload_id: str, first: int, part: bytes) -> None:
        last = first + len(part) - 1
        try:
            self._call(
                "upload_layer_part",
                repositoryName=repository,
                uploadId=upload_id,
                partFirstByte=first,
                partLastByte=last,
                layerPartBlob=part,
            )
        except RegistryError as error:
            # A retried part whose first attempt did arrive (the response was lost) is refused
            # as "not consecutive"; ECR's lastValidByteReceived says it is already there.
            landed = error.details.get("lastValidByteReceived")
            if error.code == "InvalidLayerPartException" and landed == last:
                return
            raise

    def upload_bytes(self, repository: str, data: bytes) -> str:
        """Upload a small blob held in memory (a config, a test layer); returns its digest."""

        digest = digest_of(data)
        if self.missing_layers(repository, [digest]):
            self.upload_blob(repository, io.BytesIO(data), digest)
        return digest

    # replication: ECR's own registry replication (chalicelib/replication.py) -----------------

    def _own_registry_call(self, operation: str, **params: Any) -> dict[str, Any]:
        # These act on the caller's own registry and take no registryId.
        self.calls[operation] += 1
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

    # governance: repository settings (chalicelib/governance.py) ------------------------------

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

    # lifecycle: ECR's own lifecycle-policy preview (chalicelib/lifecycle.py) -----------------

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

    # gate: image scanning (chalicelib/gate.py) ------------------------------------------------

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
        token: str | None = None
        while True:
            page = self._call(
                "describe_image_scan_findings",
                repositoryName=repository,
                imageId={"imageDigest": digest},
                maxResults=PAGE_SIZE,
                **({"nextToken": token} if token else {}),
            )
            found = page.get("imageScanFindings", {})
            out["findings"].extend(found.get("findings", []))
            out["enhancedFindings"].extend(found.get("enhancedFindings", []))
            out["status"] = page.get("imageScanStatus", {}).get("status")
            token = page.get("nextToken")
            if not token:
                return out

    # tokens: credential vending (chalicelib/tokens.py) ---------------------------------------

    @classmethod
    def with_credentials(
        cls, region: str, access_key_id: str, secret_access_key: str, session_token: str
    ) -> Registry:
        """A gateway acting as a scoped, assumed-role session rather than the service itself.
        No registry id: get-authorization-token takes none (its `registryIds` is deprecated)."""

        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            region_name=region,
        )
        # A caller waits on this request: a few quick retries, not adaptive backoff.
        return cls(region=region, session=session, max_attempts=3)

    def authorization_token(self) -> AuthorizationToken:
        """get-authorization-token: a docker login credential carrying this gateway's identity."""

        # The caller's own registry: registryId is not a parameter (registryIds is deprecated).
        data = self._own_registry_call("get_authorization_token")["authorizationData"][0]
        username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        return AuthorizationToken(
            username=username,
            password=SecretStr(password),
            proxy_endpoint=data["proxyEndpoint"],
            expires_at=data["expiresAt"],
        )


def _exclusion_filters(patterns: list[str]) -> list[dict[str, str]]:
    return [{"filterType": "WILDCARD", "filter": p} for p in patterns]


def _read_exactly(reader: IO[bytes], size: int) -> bytes:
    """Read up to `size` bytes, looping over short reads (sockets and pipes return early)."""
    chunks = []
    remaining = size
    while remaining > 0:
        chunk = reader.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
